"""The auth tables (SQLAlchemy Core), named after Convex Auth's ``authTables``.

Tables are built per :class:`~authbridge.Auth` by :func:`build_tables`, so an application can add
columns to ``users`` without touching a global registry::

    from sqlalchemy import Column, String
    auth = Auth(config, user_columns=[Column("display_name", String(100))])
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from ..errors import ConfigError

__all__ = ["Tables", "UTCDateTime", "build_tables", "new_id"]

ID_LENGTH = 32
SEALED_SECRET_LENGTH = 128


def new_id() -> str:
    """An opaque, unguessable identifier (128 random bits, URL-safe, 22 characters)."""
    return secrets.token_urlsafe(16)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _id_column() -> Column[Any]:
    return Column("id", String(ID_LENGTH), primary_key=True, default=new_id)


def _created_at() -> Column[Any]:
    return Column("created_at", UTCDateTime(), nullable=False)


@dataclass(frozen=True, slots=True)
class Tables:
    """The auth tables of one :class:`~authbridge.Auth`, sharing one :class:`MetaData`."""

    metadata: MetaData
    users: Table
    accounts: Table
    sessions: Table
    refresh_tokens: Table
    rate_limits: Table
    revocations: Table
    keys: Table
    verifiers: Table
    provider_tokens: Table
    verification_codes: Table
    totp: Table
    recovery_codes: Table
    passkeys: Table
    webauthn_challenges: Table


def build_tables(
    metadata: MetaData | None = None, user_columns: Iterable[Column[Any]] = ()
) -> Tables:
    """Define the auth tables on ``metadata`` (a new one by default).

    Args:
        metadata: where to define the tables; pass the application's own to keep one schema.
        user_columns: extra columns for ``users`` (they must be nullable or have defaults).

    Raises:
        ConfigError: a user column is NOT NULL without a default, or a primary key.
    """
    md = metadata if metadata is not None else MetaData()
    extra: list[Column[Any]] = []
    for column in user_columns:
        if column.primary_key or not (
            column.nullable or column.default is not None or column.server_default is not None
        ):
            # Sign-up inserts users without app columns: a NOT NULL column without a default
            # would make every sign-up fail.
            raise ConfigError(
                f"user column {column.name!r} must be nullable or have a default "
                "(and must not be a primary key)"
            )
        # A Column belongs to one Table: copy, so one list can serve several Auth engines.
        extra.append(column._copy())
    users = Table(
        "users",
        md,
        _id_column(),
        _created_at(),
        Column("name", String(200)),
        Column("image", Text),
        Column("email", String(320)),
        Column("email_verified_at", UTCDateTime()),
        Column("phone", String(40)),
        Column("phone_verified_at", UTCDateTime()),
        Column("is_anonymous", Boolean, nullable=False, default=False),
        Column("convex_id", String(64)),  # the Convex Auth id of an imported user (mapping)
        *extra,
        Index("ix_users_email", "email", unique=True),
        Index("ix_users_phone", "phone"),
        Index("ix_users_convex_id", "convex_id", unique=True),
    )
    accounts = Table(
        "auth_accounts",
        md,
        _id_column(),
        _created_at(),
        Column(
            "user_id", String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        Column("provider", String(64), nullable=False),
        Column("provider_account_id", String(320), nullable=False),
        Column("secret", Text),
        Column("convex_id", String(64)),  # the Convex Auth id of an imported account
        UniqueConstraint(
            "provider", "provider_account_id", name="uq_auth_accounts_provider_provider_account_id"
        ),
        Index("ix_auth_accounts_user_id", "user_id"),
        Index("ix_auth_accounts_convex_id", "convex_id", unique=True),
    )
    sessions = Table(
        "auth_sessions",
        md,
        _id_column(),
        _created_at(),
        Column(
            "user_id", String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        Column("expires_at", UTCDateTime(), nullable=False),
        Column("last_active_at", UTCDateTime(), nullable=False),
        Column("created_ip", String(64)),
        Column("user_agent", String(512)),
        # When and how the user last proved who they are (OIDC auth_time / RFC 8176 amr,
        # space-separated); NULL on rows made before migration 0006 (read as created_at, []).
        Column("auth_time", UTCDateTime()),
        Column("amr", String(64)),
        Index("ix_auth_sessions_user_id", "user_id"),
        Index("ix_auth_sessions_expires_at", "expires_at"),
    )
    refresh_tokens = Table(
        "auth_refresh_tokens",
        md,
        _id_column(),
        _created_at(),
        Column(
            "session_id",
            String(ID_LENGTH),
            ForeignKey("auth_sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("token_hash", String(64), nullable=False),
        Column("parent_id", String(ID_LENGTH)),
        Column("expires_at", UTCDateTime(), nullable=False),
        Column("first_used_at", UTCDateTime()),
        # The child's secret, AES-GCM sealed, kept only while its parent's reuse window is open
        # (a lost response converges on it); erased afterwards.
        Column("sealed_secret", String(SEALED_SECRET_LENGTH)),
        Index("ix_auth_refresh_tokens_token_hash", "token_hash", unique=True),
        Index("ix_auth_refresh_tokens_session_id", "session_id"),
        Index("ix_auth_refresh_tokens_parent_id", "parent_id"),
        Index("ix_auth_refresh_tokens_expires_at", "expires_at"),
    )
    rate_limits = Table(
        "auth_rate_limits",
        md,
        Column("identifier", String(400), primary_key=True),
        Column("attempts_left", Float, nullable=False),
        Column("last_attempt_at", UTCDateTime(), nullable=False),
        Index("ix_auth_rate_limits_last_attempt_at", "last_attempt_at"),
    )
    revocations = Table(
        "auth_revocations",
        md,
        # The feed's cursor: assigned by the database, never by an application clock.
        Column(
            "seq",
            BigInteger().with_variant(Integer(), "sqlite"),
            Identity(),
            primary_key=True,
        ),
        Column("session_id", String(ID_LENGTH), nullable=False),
        Column("revoked_at", UTCDateTime(), nullable=False),
        Column("expires_at", UTCDateTime(), nullable=False),
        Index("ix_auth_revocations_session_id", "session_id", unique=True),
        Index("ix_auth_revocations_expires_at", "expires_at"),
        sqlite_autoincrement=True,
    )
    keys = Table(
        "auth_keys",
        md,
        Column("kid", String(64), primary_key=True),
        _created_at(),
        Column("algorithm", String(16), nullable=False),
        Column("public_jwk", Text, nullable=False),
        Column("private_pem", Text),
    )
    verifiers = Table(
        "auth_verifiers",
        md,
        Column("id", String(64), primary_key=True),  # sha256 of the OAuth state
        _created_at(),
        Column("provider", String(64), nullable=False),
        Column("browser_hash", String(64), nullable=False),
        Column("code_verifier", String(128), nullable=False),
        Column("nonce", String(128)),
        Column("redirect_to", Text),
        Column("tab", String(40)),
        Column("link_user_id", String(ID_LENGTH)),
        Column("expires_at", UTCDateTime(), nullable=False),
        Index("ix_auth_verifiers_expires_at", "expires_at"),
    )
    provider_tokens = Table(
        "auth_provider_tokens",
        md,
        Column(
            "account_id",
            String(ID_LENGTH),
            ForeignKey("auth_accounts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        _created_at(),
        Column("updated_at", UTCDateTime(), nullable=False),
        Column("access_token", Text, nullable=False),
        Column("refresh_token", Text),
        Column("expires_at", UTCDateTime()),
        Column("scope", Text),
    )
    verification_codes = Table(
        "auth_verification_codes",
        md,
        _id_column(),
        _created_at(),
        Column("user_id", String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE")),
        Column("identifier", String(320), nullable=False),
        Column("purpose", String(32), nullable=False),
        Column("code_hash", String(64), nullable=False),
        Column("link_hash", String(64)),
        Column("expires_at", UTCDateTime(), nullable=False),
        Column("attempts_left", Integer, nullable=False),
        # One live code per address and purpose: a new code replaces (voids) the previous one.
        Index(
            "ix_auth_verification_codes_identifier_purpose", "identifier", "purpose", unique=True
        ),
        Index("ix_auth_verification_codes_expires_at", "expires_at"),
        Index("ix_auth_verification_codes_user_id", "user_id"),
    )
    totp, recovery_codes = _factor_tables(md)
    return Tables(
        md,
        users,
        accounts,
        sessions,
        refresh_tokens,
        rate_limits,
        revocations,
        keys,
        verifiers,
        provider_tokens,
        verification_codes,
        totp,
        recovery_codes,
        *_passkey_tables(md),
    )


def _user_id_column(**kwargs: Any) -> Column[Any]:
    return Column(
        "user_id",
        String(ID_LENGTH),
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        **kwargs,
    )


def _factor_tables(md: MetaData) -> tuple[Table, Table]:
    """Second factors: a TOTP secret per user (AES-GCM sealed) and its recovery codes."""
    totp = Table(
        "auth_totp",
        md,
        _user_id_column(primary_key=True),
        _created_at(),
        Column("sealed_secret", String(SEALED_SECRET_LENGTH), nullable=False),
        Column("confirmed_at", UTCDateTime()),
        # The last time step a code was accepted for: a step is never accepted twice.
        Column("last_step", BigInteger),
    )
    recovery_codes = Table(
        "auth_recovery_codes",
        md,
        _id_column(),
        _created_at(),
        _user_id_column(),
        Column("code_hash", String(64), nullable=False),
        Column("used_at", UTCDateTime()),
        Index("ix_auth_recovery_codes_user_id", "user_id"),
        Index("ix_auth_recovery_codes_code_hash", "code_hash", unique=True),
    )
    return totp, recovery_codes


def _passkey_tables(md: MetaData) -> tuple[Table, Table]:
    """WebAuthn credentials (passkeys) and the single-use challenges of their ceremonies."""
    passkeys = Table(
        "auth_passkeys",
        md,
        _id_column(),
        _created_at(),
        _user_id_column(),
        Column("credential_id", String(1400), nullable=False),  # base64url, at most 1023 bytes
        Column("public_key", Text, nullable=False),  # base64url COSE key
        Column("sign_count", BigInteger, nullable=False, default=0),
        Column("name", String(100)),
        Column("transports", String(200)),
        Column("backed_up", Boolean, nullable=False, default=False),
        Column("last_used_at", UTCDateTime()),
        Index("ix_auth_passkeys_credential_id", "credential_id", unique=True),
        Index("ix_auth_passkeys_user_id", "user_id"),
    )
    challenges = Table(
        "auth_webauthn_challenges",
        md,
        _id_column(),
        _created_at(),
        Column("user_id", String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE")),
        Column("purpose", String(16), nullable=False),
        Column("challenge", String(128), nullable=False),
        Column("expires_at", UTCDateTime(), nullable=False),
        Index("ix_auth_webauthn_challenges_expires_at", "expires_at"),
    )
    return passkeys, challenges
