"""The tables, as SQLAlchemy models; Alembic migrations in `migrations/` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args

from advanced_alchemy.base import DefaultBase, IdentityBase
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import JSON, TypeDecorator, TypeEngine, UserDefinedType

from service.core.limits import EMAIL_MAX, NAME_MAX, SPECIALTY_MAX

# An account's role decides the scopes of its tokens (service.accounts.auth.ROLE_SCOPES).
Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

# Unique indexes by name: a write that breaks one is told apart from other errors by this name.
DEVELOPERS_EMAIL_INDEX = "uq_developers_email_lower"
USERS_EMAIL_INDEX = "uq_users_email_lower"


class UTCDateTime(TypeDecorator[datetime]):
    """MariaDB's DATETIME(6), which holds no time zone, as UTC both ways (every connection's zone is UTC:
    service.db.mariadb). advanced-alchemy's DateTimeUTC does the same over DATETIME, which drops microseconds."""

    impl = mysql.DATETIME
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC).replace(tzinfo=None) if value is not None and value.tzinfo else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _text(limit: int) -> TypeEngine[str]:
    """TEXT on PostgreSQL (its CHECKs hold the limit); on MariaDB a VARCHAR of the limit, which an index can
    cover, compared by code point (migration 0007)."""
    return Text().with_variant(String(limit, collation="utf8mb4_nopad_bin"), "mysql", "mariadb")


def _timestamp() -> TypeEngine[datetime]:
    return DateTime(timezone=True).with_variant(UTCDateTime(fsp=6), "mysql", "mariadb")


def _json() -> TypeEngine[Any]:
    return JSONB().with_variant(JSON(), "mysql", "mariadb")


class Developer(IdentityBase):
    """A developer in the directory. `id` is a bigint identity column (advanced-alchemy's IdentityBase)."""

    __tablename__ = "developers"
    __table_args__ = (
        # Emails are unique whatever their case; they are stored as the client wrote them.
        Index(DEVELOPERS_EMAIL_INDEX, text("lower(email)"), unique=True),
        # Serves the main query: one specialty, in (name, id) order, keyset-paginated.
        Index("ix_developers_specialty_name_id", "specialty", "name", "id"),
        # Serves the same listing without a specialty filter.
        Index("ix_developers_name_id", "name", "id"),
        # The database enforces the lengths too, so no write path (COPY included) can bypass them.
        CheckConstraint(f"char_length(name) BETWEEN 1 AND {NAME_MAX}", name="name_length"),
        CheckConstraint(f"char_length(specialty) BETWEEN 1 AND {SPECIALTY_MAX}", name="specialty_length"),
        CheckConstraint(f"char_length(email) BETWEEN 3 AND {EMAIL_MAX}", name="email_length"),
        # Equal emails in other Unicode forms would pass the unique index (service.core.validation; PostgreSQL 13+).
        CheckConstraint("email IS NFC NORMALIZED", name="email_nfc"),
    )

    name: Mapped[str] = mapped_column(_text(NAME_MAX), nullable=False)
    email: Mapped[str] = mapped_column(_text(EMAIL_MAX), nullable=False)
    specialty: Mapped[str] = mapped_column(_text(SPECIALTY_MAX), nullable=False)
    created_at: Mapped[datetime] = mapped_column(_timestamp(), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        _timestamp(), nullable=False, server_default=func.now(), onupdate=func.now()
    )
    # Incremented by every statement that updates the row (migration 0006): the ETag's version
    # (service.developers.etags).
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("1"))


class User(IdentityBase):
    """An account that can sign in. The password is stored only as an argon2id hash (service.accounts)."""

    __tablename__ = "users"
    __table_args__ = (
        Index(USERS_EMAIL_INDEX, text("lower(email)"), unique=True),
        CheckConstraint(f"char_length(email) BETWEEN 3 AND {EMAIL_MAX}", name="email_length"),
        CheckConstraint("email IS NFC NORMALIZED", name="email_nfc"),
        CheckConstraint(f"role IN ({', '.join(repr(role) for role in ROLES)})", name="role_known"),
    )

    email: Mapped[str] = mapped_column(_text(EMAIL_MAX), nullable=False)
    password_hash: Mapped[str] = mapped_column(_text(255), nullable=False)
    role: Mapped[str] = mapped_column(_text(16), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(_timestamp(), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        _timestamp(), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class XID8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (13+), which never wraps around as `xid` does."""

    cache_ok = True

    def get_col_spec(self, **_: object) -> str:
        return "xid8"


ischema_names["xid8"] = XID8  # so that reflection (Alembic's comparison with the migrations) knows the type


class DeveloperEvent(DefaultBase):
    """One change to `developers`, written by triggers in the writer's own transaction (migration 0004): the
    change feed's outbox. Ordered by (xid, id); service.developers.events reads it."""

    __tablename__ = "developer_events"
    __table_args__ = (
        Index("ix_developer_events_xid_id", "xid", "id", unique=True),
        Index("ix_developer_events_at", "at"),  # retention deletes by age
        CheckConstraint(
            "op IN ('created', 'updated', 'deleted', 'bulk', 'import.queued', 'import.running', 'import.succeeded', "
            "'import.failed', 'import.cancelled')",
            name="op_known",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    xid: Mapped[int] = mapped_column(XID8, nullable=False, server_default=text("pg_current_xact_id()"))
    op: Mapped[str] = mapped_column(Text, nullable=False)
    developer_id: Mapped[int | None] = mapped_column(BigInteger)
    specialty: Mapped[str | None] = mapped_column(Text)
    specialties: Mapped[list[str] | None] = mapped_column(ARRAY(Text))  # NULL: too many to list, so any
    developer: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    bulk: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    job: Mapped[dict[str, object] | None] = mapped_column(JSONB)  # import.* events: the job's summary
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("statement_timestamp()")
    )


class DeveloperEventsHorizon(DefaultBase):
    """The newest event retention has deleted (one row at most): a cursor at or below it may have missed events."""

    __tablename__ = "developer_events_horizon"
    __table_args__ = (CheckConstraint("one", name="one_row"),)

    one: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    xid: Mapped[int] = mapped_column(XID8, nullable=False)
    id: Mapped[int] = mapped_column(BigInteger, nullable=False)


ImportStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
IMPORT_STATUSES: tuple[ImportStatus, ...] = get_args(ImportStatus)
FINISHED: tuple[ImportStatus, ...] = ("succeeded", "failed", "cancelled")
# What an import does with an email that exists already or repeats in its body (service.developers.bulk).
OnConflict = Literal["error", "skip", "update"]
ON_CONFLICT: tuple[OnConflict, ...] = get_args(OnConflict)


class ImportJob(DefaultBase):
    """A background import (service.imports): its status, progress and outcome. Triggers (migration 0005) write
    an `import.*` change event when one is created and whenever its status changes."""

    __tablename__ = "import_jobs"
    __table_args__ = (
        Index("ix_import_jobs_submitted_by_id", "submitted_by", "id"),  # a submitter's jobs, newest first
        Index("ix_import_jobs_finished_at", "finished_at"),  # retention deletes finished jobs by age
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in IMPORT_STATUSES)})", name="status_known"),
        CheckConstraint(f"on_conflict IN ({', '.join(repr(m) for m in ON_CONFLICT)})", name="on_conflict_known"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    status: Mapped[str] = mapped_column(_text(16), nullable=False)
    on_conflict: Mapped[str] = mapped_column(_text(16), nullable=False)
    media_type: Mapped[str] = mapped_column(_text(255), nullable=False)
    rows_total: Mapped[int | None] = mapped_column(BigInteger)
    rows_done: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    created: Mapped[int | None] = mapped_column(BigInteger)
    updated: Mapped[int | None] = mapped_column(BigInteger)
    skipped: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[dict[str, object] | None] = mapped_column(_json())  # the RFC 9457 problem of a failed import
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    # The token's subject, not a foreign key: a token may outlive its account, and a job outlives neither.
    submitted_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(_timestamp(), nullable=False, server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(_timestamp())
    finished_at: Mapped[datetime | None] = mapped_column(_timestamp())


class ImportUpload(DefaultBase):
    """A submitted import's body, in pieces of about 1 MiB, until its job finishes (storage EXTERNAL: 0005)."""

    __tablename__ = "import_uploads"

    job_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(
        LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"), nullable=False
    )
