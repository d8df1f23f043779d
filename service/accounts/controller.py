"""HTTP routes for accounts: the OAuth2 token endpoint, the caller's own account, and admin account management."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.datastructures import ResponseHeader
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, JSONBody, Parameter
from litestar.security.jwt import Token

from service.accounts.auth import TOKEN_URL, Principal
from service.accounts.deps import AccountsServiceDep, TokenIssuerDep
from service.accounts.guards import ADMIN_USERS
from service.accounts.schemas import AccessToken, Account, AccountCreate, AccountUpdate, SignIn
from service.accounts.service import AccountsService
from service.accounts.token_errors import EXCEPTION_HANDLERS, MEDIA_TYPE, OAuthError, TokenError, check_token_request
from service.core.limits import EMAIL_MAX
from service.core.validation import PASSWORD_MAX
from service.web.consistency import SessionReadsDep
from service.web.controller import Controller
from service.web.path_ids import PathId
from service.web.problems import COMMON_RESPONSES, JSON_BODY_RESPONSES, problem_response
from service.web.routes import delete, get, patch, post

AccountId = Annotated[PathId, Parameter(description="The account's id.")]

ADMIN = COMMON_RESPONSES  # 403 when the token lacks users:admin
NOT_FOUND = {404: problem_response("No account has this id.")}
CONFLICT = {409: problem_response("The email is taken (any case), or the change would leave no active admin.")}
# RFC 6749 (5.1): a token response is stored by no cache, the browser's and proxies' included.
NO_STORE = [
    ResponseHeader(name="Cache-Control", value="no-store", description="A token is never cached."),
    ResponseHeader(name="Pragma", value="no-cache", description="The same, for HTTP/1.0 caches."),
]


def _token_error(description: str) -> ResponseSpec:
    return ResponseSpec(TokenError, description=description, media_type=MEDIA_TYPE, generate_examples=False)


class AccessController(Controller):
    path = TOKEN_URL
    tags = ["access"]

    @post(
        status_code=200,
        summary="Sign in: an account's email and password for a bearer token (OAuth2 password flow)",
        exclude_from_auth=True,  # the way to get a token cannot need one (and the document says `security: []`)
        consistency=False,  # writes nothing
        response_headers=NO_STORE,
        # Failures are RFC 6749's error responses, which OAuth2 clients read (service.accounts.token_errors).
        before_request=check_token_request,
        exception_handlers=EXCEPTION_HANDLERS,
        responses={
            400: _token_error(
                "An OAuth2 error (RFC 6749, 5.2): `invalid_request` when the form lacks username or password, the "
                f"username is longer than {EMAIL_MAX} characters or holds a NUL, or the password is longer than "
                f"{PASSWORD_MAX} (`error_description` names the field); `unsupported_grant_type` for a grant_type "
                "other than password; `invalid_grant` for a wrong email or password or an inactive account (one "
                "answer for all three)."
            ),
            401: _token_error(
                "`invalid_client`: a client secret was sent (in the form, or as Basic credentials: then with "
                "`WWW-Authenticate: Basic`); this service has no confidential clients."
            ),
            415: problem_response(
                "The body is not `application/x-www-form-urlencoded`; `Accept-Post` names the type to send."
            ),
            429: problem_response("Too many attempts from this address; retry after `Retry-After` seconds."),
            503: COMMON_RESPONSES[503],
        },
    )
    async def sign_in(
        self,
        accounts_service: AccountsServiceDep,
        token_issuer: TokenIssuerDep,
        data: Annotated[SignIn, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> AccessToken:
        account = await accounts_service.authenticate(data.username, data.password)
        if account is None:
            raise OAuthError("invalid_grant", "wrong email or password")
        return AccessToken(token_issuer.issue(account.id, account.role), "bearer", token_issuer.expires_in)


class UsersController(Controller):
    path = "/api/users"
    tags = ["users"]

    @get("/me", summary="The caller's account", responses=COMMON_RESPONSES | NOT_FOUND)
    async def get_me(self, session_reads: SessionReadsDep, request: Request[Principal, Token, Any]) -> Account:
        # A read that may run on a hot standby, seeing at least the caller's own writes (service.db.routing).
        return await session_reads.run(lambda session: AccountsService(session).get(request.user.id))

    @get(summary="List accounts", guards=[ADMIN_USERS], responses=ADMIN)
    async def list_accounts(self, session_reads: SessionReadsDep) -> list[Account]:
        return await session_reads.run(lambda session: AccountsService(session).list())

    @post(summary="Create an account", guards=[ADMIN_USERS], responses=ADMIN | CONFLICT | JSON_BODY_RESPONSES)
    async def create_account(self, accounts_service: AccountsServiceDep, data: JSONBody[AccountCreate]) -> Account:
        return await accounts_service.create(data)

    @patch(
        "/{account_id:str}",
        summary="Change an account's role, active flag or password",
        guards=[ADMIN_USERS],
        responses=ADMIN | NOT_FOUND | CONFLICT | JSON_BODY_RESPONSES,
    )
    async def update_account(
        self, accounts_service: AccountsServiceDep, account_id: AccountId, data: JSONBody[AccountUpdate]
    ) -> Account:
        return await accounts_service.update(account_id, data)

    @delete(
        "/{account_id:str}", summary="Remove an account", guards=[ADMIN_USERS], responses=ADMIN | NOT_FOUND | CONFLICT
    )
    async def delete_account(self, accounts_service: AccountsServiceDep, account_id: AccountId) -> None:
        await accounts_service.delete(account_id)
