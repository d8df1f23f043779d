"""Scope guards: coroutines (no worker thread per request), a 401 problem when no user is in scope, and the
security requirement each states for the API document."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar, get
from litestar.plugins.problem_details import ProblemDetailsPlugin
from litestar.types import Guard
from litestar.utils.predicates import is_async_callable
from litestar.utils.sync import ensure_async_callable

from service.accounts.auth import ROLE_SCOPES, SCHEME, SCOPES
from service.accounts.guards import ADMIN_USERS, READ_DEVELOPERS, WRITE_DEVELOPERS, Requires
from service.db.models import ROLES
from service.web.problems import problem_details_config
from tests.client import assert_problem

GUARDS = [READ_DEVELOPERS, WRITE_DEVELOPERS, ADMIN_USERS]


@pytest.mark.parametrize("guard", GUARDS)
def test_guards_are_coroutines(guard: Guard) -> None:
    # Litestar runs a plain function guard through a thread pool, paying a thread hop on every request: it keeps
    # a guard it reads as a coroutine (an object whose __call__ is one) as it is.
    assert is_async_callable(guard)
    assert ensure_async_callable(guard) is guard


@pytest.mark.parametrize("guard", GUARDS)
def test_guards_state_the_scope_they_check(guard: Requires) -> None:
    assert guard.scope in SCOPES
    assert guard.security == {SCHEME: [guard.scope]}


@pytest.mark.parametrize("guard", GUARDS)
async def test_a_guard_without_a_user_in_scope_answers_401(guard: Guard) -> None:
    # An app without the auth middleware: the guard is the only thing between the caller and the route.
    @get("/guarded", guards=[guard], sync_to_thread=False)
    def guarded() -> str:
        return "reached"

    app = Litestar([guarded], plugins=[ProblemDetailsPlugin(problem_details_config(1))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.get("/guarded")
    body = assert_problem(response, 401)
    assert body["detail"] == "this route needs a bearer token"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "reached" not in response.text


def test_every_role_has_scopes_and_every_guarded_scope_is_granted_to_some_role() -> None:
    # The roles are declared once (service.db.models.Role); the scopes of each are in ROLE_SCOPES.
    assert set(ROLE_SCOPES) == set(ROLES)
    granted = {scope for scopes in ROLE_SCOPES.values() for scope in scopes}
    assert granted == set(SCOPES)
    assert set(ROLE_SCOPES["admin"]) == set(SCOPES)
