"""Every setting of the service, typed, read from the environment and validated in one place.

Each field is read from the environment variable of the same name in upper case (`db_pool_size` from
`DB_POOL_SIZE`). The Kubernetes ConfigMap and docs/operations.md list exactly these names. Each value is checked on its
own as it is read (types, bounds); `check()` adds the rules that span the settings the app needs to start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from service.core.database_urls import Backend, backend_of, parse_database_urls
from service.core.limits import EMAIL_MAX
from service.core.origins import parse_origins
from service.core.validation import Email, Password, normalize_fields

SECRET_KEY_MIN = 32
# Settings no longer read, with what replaced them: set, they stop the start rather than be silently ignored.
REMOVED = {
    "DB_ISOLATION_LEVEL": "each write declares its own isolation level (service/db/isolation.py; docs/ARCHITECTURE.md)",
}


class SettingsError(ValueError):
    """A setting in the environment is missing or malformed; the message names it."""


def _parsed(name: str, parse: Callable[[str], tuple[str, ...]], text: str) -> tuple[str, ...]:
    """A comma-separated setting's entries as `parse` reads them; its ValueError as a SettingsError naming `name`."""
    try:
        return parse(text)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from exc


class AdminAccount(msgspec.Struct, frozen=True):
    """DEVDIR_ADMIN_EMAIL and DEVDIR_ADMIN_PASSWORD, held to the rules of any account's email and password."""

    email: Email
    password: Password

    def __post_init__(self) -> None:
        normalize_fields(self, {"email": EMAIL_MAX})  # as every account's email is


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Empty means "development": `devdir` starts an embedded PostgreSQL under DATA_DIR and fills this in. Request
    # traffic goes here: PostgreSQL itself, or a transaction-mode pooler (then DB_POOLER=transaction).
    database_url: str = ""
    # A connection that keeps its session (PostgreSQL, or a session-mode pooler): the change feed's LISTEN, the
    # job queue's listener, migrations, anything holding a session lock. Empty: DATABASE_URL.
    database_direct_url: str = ""
    # `transaction` when DATABASE_URL is a transaction-mode pooler (PgBouncer): nothing sent over it then depends on
    # the session (service.db.pooler says what changes on the wire).
    db_pooler: Literal["none", "transaction"] = "none"
    # Behind a transaction-mode pooler that keeps protocol-level prepared statements itself (PgBouncer >= 1.21
    # with max_prepared_statements > 0): statements stay prepared, as on a direct connection. False: unnamed ones.
    db_pooler_prepared_statements: bool = False
    # Hot standbys of the primary (comma-separated postgresql:// URLs; empty: none) whose replay lag the service
    # watches and reports on /metrics (service.db.replicas); DB_REPLICA_MAX_LAG_MS is how far behind the primary a
    # standby may be to count as usable.
    database_replica_urls: str = ""
    db_replica_max_lag_ms: Annotated[int, msgspec.Meta(gt=0)] = 1000
    # Pool sizing: replicas x (pool + overflow) must stay under the server's max_connections.
    db_pool_size: Annotated[int, msgspec.Meta(ge=1)] = 20
    # No overflow by default: an overflow connection is opened under load and closed when returned, so a steady
    # load above the pool's size would open and close connections all the time. Requests beyond the pool wait
    # for a connection instead (DB_POOL_TIMEOUT, then 503).
    db_max_overflow: Annotated[int, msgspec.Meta(ge=0)] = 0
    # How long a request waits for a free connection before it is answered 503 (seconds).
    db_pool_timeout: Annotated[float, msgspec.Meta(gt=0)] = 3.0
    db_pool_recycle: Annotated[int, msgspec.Meta(ge=-1)] = 3600
    db_pool_pre_ping: bool = True
    # Opening a new connection gives up after this many seconds (asyncpg's own default is 60).
    db_connect_timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    # Server-side statement_timeout for every connection; 0 disables it.
    db_statement_timeout_ms: Annotated[int, msgspec.Meta(ge=0)] = 10_000
    # Server-side backstop: PostgreSQL ends a session left idle inside a transaction this long (0 disables it).
    # Above BODY_IDLE_TIMEOUT_SECONDS, which ends a stalled upload's transaction first, with a 408.
    db_idle_in_transaction_timeout_ms: Annotated[int, msgspec.Meta(ge=0)] = 60_000
    # A request body that sends nothing for this long is answered 408 (an import's transaction then rolls back);
    # so is one whose reads have waited longer than that plus a second per BODY_MIN_BYTES_PER_SECOND bytes it
    # brought (0: no minimum rate). A trickle never idle for long thus cannot hold an upload's connection either.
    body_idle_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    body_min_bytes_per_second: Annotated[float, msgspec.Meta(ge=0)] = 32 * 1024
    # Bulk routes: rows per request and body bytes per request (413 beyond either), and the statement_timeout
    # of a bulk transaction, which may insert a million rows in one statement (0 disables it). Each streamed upload
    # (the import, the import submission) holds a connection of the request pool while its body arrives, so at
    # most BULK_MAX_CONCURRENT stream at once per process (more is 503); keep it, with EXPORT_MAX_CONCURRENT, well
    # under DB_POOL_SIZE.
    bulk_max_rows: Annotated[int, msgspec.Meta(ge=1)] = 1_000_000
    bulk_max_bytes: Annotated[int, msgspec.Meta(ge=1)] = 256 * 1024 * 1024
    bulk_statement_timeout_ms: Annotated[int, msgspec.Meta(ge=0)] = 600_000
    bulk_max_concurrent: Annotated[int, msgspec.Meta(ge=1)] = 4
    # GET /api/developers/export: each export holds a connection of the request pool for as long as it streams,
    # so at most EXPORT_MAX_CONCURRENT run at once per process (more is 503); keep it well under DB_POOL_SIZE. Its
    # COPY's statement_timeout, stretched by a slow client, is EXPORT_STATEMENT_TIMEOUT_MS (0 disables it); a
    # client that reads nothing for EXPORT_IDLE_TIMEOUT_SECONDS has its export cut (PostgreSQL does not act on a
    # statement timeout while it waits to write to a client that does not read).
    export_max_concurrent: Annotated[int, msgspec.Meta(ge=1)] = 4
    export_statement_timeout_ms: Annotated[int, msgspec.Meta(ge=0)] = 3_600_000
    export_idle_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    # A PATCH or DELETE of one developer without If-Match is refused (428): no client can overwrite a change it
    # has not read. Off, such a write applies to whatever version is current (the last one wins).
    require_if_match: bool = False
    # Signs the access tokens (HS256): 32 characters or more, the same on every replica. `devdir` on the embedded
    # development database makes one and keeps it under DATA_DIR; anywhere else it must be set.
    secret_key: str = ""
    access_token_minutes: Annotated[int, msgspec.Meta(ge=1)] = 15
    # Attempts at POST /api/access/token per client address and minute (per process); more is 429.
    login_attempts_per_minute: Annotated[int, msgspec.Meta(ge=1)] = 10
    # On a first start with no account at all, this admin is created (the password is hashed, never logged).
    devdir_admin_email: str = ""
    devdir_admin_password: str = ""
    # The change feed: events are kept this long (a resume from an older cursor is 410); the listener polls this
    # often when it has no notification (connection lost, or events held back by an older open transaction);
    # idle streams get a keepalive this often; a subscriber this many events behind is told to resync.
    events_retention_hours: Annotated[int, msgspec.Meta(ge=1)] = 24
    events_poll_seconds: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    events_keepalive_seconds: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    events_queue_size: Annotated[int, msgspec.Meta(ge=1)] = 1000
    # A feed ticket (POST /api/developers/events/tickets) opens a stream for this many seconds after it is issued:
    # long enough for a page to open its EventSource, short enough that a URL seen somewhere is soon worth nothing.
    events_ticket_seconds: Annotated[int, msgspec.Meta(ge=1, le=300)] = 30
    # Browser origins (`https://app.example`, comma-separated) whose pages may call the API (CORS) and open the
    # feed's WebSocket; empty: no CORS at all, and a WebSocket only from the service's own pages or non-browsers.
    cors_allow_origins: str = ""
    # Background imports (service.imports). Each worker process runs WORKER_CONCURRENCY imports at a time, on its
    # own pool of WORKER_POOL_SIZE connections (an import holds two: its transaction and its progress updates),
    # never on the request pool; plus one connection for the queue. A worker whose heartbeat is older than
    # WORKER_HEARTBEAT_SECONDS is taken for dead and its job is picked again by another worker; a job is given up
    # (failed) after IMPORT_MAX_ATTEMPTS starts. On SIGTERM a running import has WORKER_SHUTDOWN_SECONDS to end,
    # then it is rolled back and queued again. `devdir workers run` answers /health and /ready on
    # WORKER_HEALTH_PORT. WORKER_IN_PROCESS runs a worker inside the API process (`devdir run` on the embedded
    # database sets it). Finished jobs are deleted after IMPORTS_RETENTION_HOURS.
    worker_concurrency: Annotated[int, msgspec.Meta(ge=1)] = 1
    worker_pool_size: Annotated[int, msgspec.Meta(ge=2)] = 3
    worker_heartbeat_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    worker_shutdown_seconds: Annotated[float, msgspec.Meta(ge=0)] = 20.0
    worker_health_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8001
    worker_in_process: bool = False
    import_max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 3
    imports_retention_hours: Annotated[int, msgspec.Meta(ge=1)] = 168
    # GET /metrics (Prometheus) and the request metrics behind it; off, neither the route nor the middleware exists.
    metrics_enabled: bool = True
    # OpenTelemetry traces of requests and SQL, sent over OTLP/HTTP to this collector (`<endpoint>/v1/traces`);
    # empty, nothing of OpenTelemetry is set up (service.observability.traces).
    otel_exporter_otlp_endpoint: str = ""
    # Seconds a 503 asks the client to wait before retrying.
    retry_after_seconds: Annotated[int, msgspec.Meta(ge=0)] = 1
    # Log lines as JSON objects (production) or human-readable (`console`; `devdir run` on the embedded database
    # defaults to it). Either way one line per request, and every line carries its request's X-Request-ID.
    log_format: Literal["json", "console"] = "json"
    # The request log layer: off, no line per request and no X-Request-ID (the read benchmark prices it this way).
    log_requests: bool = True
    # Where development state (the embedded PostgreSQL) lives.
    data_dir: str = ".data"
    debug: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ
        if removed := [f"{name}: {why}" for name, why in REMOVED.items() if name in env]:
            raise SettingsError(f"no longer a setting, unset it: {'; '.join(removed)}")
        raw: dict[str, object] = {name: env[name.upper()] for name in cls.__struct_fields__ if name.upper() in env}
        raw.update(overrides)
        try:
            # strict=False lets msgspec turn the environment's strings into ints, floats and bools.
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"invalid setting: {exc} (environment variables are the upper-case names)") from exc

    def check(self) -> None:
        """What the app needs to start, beyond each value's own type and bounds; SettingsError names what is wrong.

        `devdir` fills in DATABASE_URL and SECRET_KEY for the embedded development database before the app is
        built, so these hold for every command that loads the app, `run` or any other.
        """
        if not self.database_url:
            raise SettingsError("DATABASE_URL is not set (`devdir run` starts an embedded PostgreSQL when it is not)")
        if self.backend == "mariadb":
            self._check_mariadb()
        if self.db_pooler == "transaction" and not self.database_direct_url:
            raise SettingsError(
                "DB_POOLER=transaction needs DATABASE_DIRECT_URL: the change feed's LISTEN, the job queue and "
                "migrations need a connection that keeps its session, which a transaction-mode pooler does not give"
            )
        if len(self.secret_key) < SECRET_KEY_MIN:
            raise SettingsError(
                f"SECRET_KEY must be set to {SECRET_KEY_MIN} characters or more (it signs the access tokens); "
                "`devdir` makes one only for the embedded development database"
            )
        if self.worker_pool_size < 2 * self.worker_concurrency + 1:
            raise SettingsError(
                "WORKER_POOL_SIZE must be at least 2 x WORKER_CONCURRENCY + 1 (each import holds two connections, "
                "and the periodic tasks one)"
            )
        self.first_admin()  # raises now if the pair is wrong; the admin is created at start-up
        self.allowed_origins  # noqa: B018 (raises now if an entry is not an origin)
        self.replica_urls  # noqa: B018 (raises now if an entry is not a PostgreSQL URL)

    def _check_mariadb(self) -> None:
        """What only PostgreSQL has: a transaction-mode pooler in front of it, and hot standbys read with tokens."""
        if self.db_pooler != "none":
            raise SettingsError("DB_POOLER=transaction is for PgBouncer in front of PostgreSQL, not MariaDB or MySQL")
        if self.database_replica_urls:
            raise SettingsError(
                "DATABASE_REPLICA_URLS is for PostgreSQL hot standbys; on MariaDB or MySQL every read runs on "
                'DATABASE_URL (README, "PostgreSQL and MariaDB")'
            )
        if self.database_direct_url and backend_of(self.database_direct_url) != "mariadb":
            raise SettingsError("DATABASE_DIRECT_URL must name the same kind of server as DATABASE_URL")

    @property
    def backend(self) -> Backend:
        """The kind of server DATABASE_URL names: `postgresql` or `mariadb` (MariaDB or MySQL), by its scheme."""
        try:
            return backend_of(self.database_url)
        except ValueError as exc:
            raise SettingsError(f"DATABASE_URL: {exc}") from exc

    @property
    def direct_url(self) -> str:
        """DATABASE_DIRECT_URL, or DATABASE_URL when it is not set."""
        return self.database_direct_url or self.database_url

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """CORS_ALLOW_ORIGINS as origins in their serialized form (lower case, no default port)."""
        return _parsed("CORS_ALLOW_ORIGINS", parse_origins, self.cors_allow_origins)

    @property
    def replica_urls(self) -> tuple[str, ...]:
        """DATABASE_REPLICA_URLS as a tuple of PostgreSQL URLs; the error names an entry without its password."""
        return _parsed("DATABASE_REPLICA_URLS", parse_database_urls, self.database_replica_urls)

    def first_admin(self) -> AdminAccount | None:
        """The admin to create on a first start, if DEVDIR_ADMIN_EMAIL / DEVDIR_ADMIN_PASSWORD name one."""
        if not (self.devdir_admin_email or self.devdir_admin_password):
            return None
        fields = {"email": self.devdir_admin_email, "password": self.devdir_admin_password}
        try:
            return msgspec.convert(fields, AdminAccount)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"DEVDIR_ADMIN_EMAIL / DEVDIR_ADMIN_PASSWORD: {exc}") from exc

    @classmethod
    def env_names(cls) -> tuple[str, ...]:
        return tuple(name.upper() for name in cls.__struct_fields__)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()
