"""The SQLAlchemy plugin's configuration, built from the settings: engine, pool, session, Alembic."""

from __future__ import annotations

from pathlib import Path

from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)

from service.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_versions"


def async_url(url: str) -> str:
    """Accept the plain `postgresql://` URLs operators and PostgreSQL tools use; the engine needs asyncpg's."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def sqlalchemy_config(settings: Settings) -> SQLAlchemyAsyncConfig:
    server_settings = {"application_name": "devdir"}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    if settings.db_idle_in_transaction_timeout_ms:
        server_settings["idle_in_transaction_session_timeout"] = str(settings.db_idle_in_transaction_timeout_ms)
    return SQLAlchemyAsyncConfig(
        connection_string=async_url(settings.database_url),
        engine_config=EngineConfig(
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,  # type: ignore[arg-type]  # SQLAlchemy takes a float
            pool_recycle=settings.db_pool_recycle,
            pool_pre_ping=settings.db_pool_pre_ping,
            # Parameters are emails and password hashes: they stay out of logs and out of error messages.
            hide_parameters=True,
            # Passed to asyncpg's transaction(), so choosing a level costs no extra round trip.
            isolation_level=settings.db_isolation_level,
            # server_settings travel in the startup packet: no SET statements after connecting.
            connect_args={"timeout": settings.db_connect_timeout, "server_settings": server_settings},
        ),
        session_config=AsyncSessionConfig(expire_on_commit=False, autoflush=False),
        # The plugin's default handler closes the session as the answer starts, which rolls back anything not
        # committed; commits are decided before that, by service.db.transaction.CommitBeforeAnswer (a 2xx is
        # sent only once COMMIT has succeeded; the plugin's "autocommit" handler sends it either way).
        before_send_handler=None,
        # Errors become RFC 9457 problems in service.problems, not advanced-alchemy's default JSON.
        set_default_exception_handler=False,
        # Timestamps are set by the database (server defaults, `updated_at = now()` in every UPDATE);
        # the ORM listeners that would do it in Python would only add per-flush work.
        enable_touch_updated_timestamp_listener=False,
        enable_file_object_listener=False,
        alembic_config=AlembicAsyncConfig(
            script_location=str(MIGRATIONS_DIR),
            script_config=str(MIGRATIONS_DIR / "alembic.ini"),
            version_table_name=VERSION_TABLE,
            render_as_batch=False,
        ),
    )
