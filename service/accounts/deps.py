"""The accounts domain's dependencies: the accounts service and the token issuer, with their handler aliases.

Registered once, on the router that mounts the accounts controllers (router.py).
"""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from service.accounts.auth import TokenIssuer
from service.accounts.service import AccountsService
from service.core.settings import Settings
from service.db.returning import UPDATE_ONE


def provide_accounts_service(
    db_session: NamedDependency[AsyncSession], state: State, settings: NamedDependency[Settings]
) -> AccountsService:
    metrics = state.get("metrics")  # service.observability.metrics.Metrics, None when METRICS_ENABLED is off
    return AccountsService(db_session, None if metrics is None else metrics.retried, UPDATE_ONE[settings.backend])


def dependencies(token_issuer: TokenIssuer) -> dict[str, Provide]:
    """The providers, with the app's one token issuer (it holds the signing key, so it is built once)."""

    def provide_token_issuer() -> TokenIssuer:
        return token_issuer

    return {
        "accounts_service": Provide(provide_accounts_service, sync_to_thread=False),
        "token_issuer": Provide(provide_token_issuer, use_cache=True, sync_to_thread=False),
    }


AccountsServiceDep = NamedDependency[AccountsService]
TokenIssuerDep = NamedDependency[TokenIssuer]
