"""The tables, as SQLAlchemy models; Alembic migrations in `migrations/` create them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from advanced_alchemy.base import IdentityBase
from sqlalchemy import Boolean, CheckConstraint, DateTime, Index, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

NAME_MAX = 200
SPECIALTY_MAX = 100
EMAIL_MAX = 254  # the longest address SMTP can carry (RFC 5321 path limit)
# An account's role decides the scopes of its tokens (service.accounts.auth.ROLE_SCOPES).
Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

# Unique indexes by name: a write that breaks one is told apart from other errors by this name.
DEVELOPERS_EMAIL_INDEX = "uq_developers_email_lower"
USERS_EMAIL_INDEX = "uq_users_email_lower"


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
        # Equal emails in other Unicode forms would pass the unique index (service.validation; PostgreSQL 13+).
        CheckConstraint("email IS NFC NORMALIZED", name="email_nfc"),
    )

    name: Mapped[str] = mapped_column(Text, nullable=False)
    email: Mapped[str] = mapped_column(Text, nullable=False)
    specialty: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class User(IdentityBase):
    """An account that can sign in. The password is stored only as an argon2id hash (service.accounts)."""

    __tablename__ = "users"
    __table_args__ = (
        Index(USERS_EMAIL_INDEX, text("lower(email)"), unique=True),
        CheckConstraint(f"char_length(email) BETWEEN 3 AND {EMAIL_MAX}", name="email_length"),
        CheckConstraint("email IS NFC NORMALIZED", name="email_nfc"),
        CheckConstraint(f"role IN ({', '.join(repr(role) for role in ROLES)})", name="role_known"),
    )

    email: Mapped[str] = mapped_column(Text, nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )
