"""The auth tables: users, auth_accounts, auth_sessions, auth_refresh_tokens, auth_rate_limits,
auth_revocations and auth_keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _id() -> sa.Column[str]:
    return sa.Column("id", sa.String(32), primary_key=True)


def _created_at() -> sa.Column[datetime]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def _when(name: str, *, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        _id(),
        _created_at(),
        sa.Column("name", sa.String(200)),
        sa.Column("image", sa.Text()),
        sa.Column("email", sa.String(320)),
        _when("email_verified_at"),
        sa.Column("phone", sa.String(40)),
        _when("phone_verified_at"),
        sa.Column("is_anonymous", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_users_email", "users", ["email"], unique=True)
    op.create_index("ix_users_phone", "users", ["phone"])

    op.create_table(
        "auth_accounts",
        _id(),
        _created_at(),
        sa.Column(
            "user_id",
            sa.String(32),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("provider_account_id", sa.String(320), nullable=False),
        sa.Column("secret", sa.Text()),
        sa.UniqueConstraint(
            "provider", "provider_account_id", name="uq_auth_accounts_provider_provider_account_id"
        ),
    )
    op.create_index("ix_auth_accounts_user_id", "auth_accounts", ["user_id"])

    op.create_table(
        "auth_sessions",
        _id(),
        _created_at(),
        sa.Column(
            "user_id",
            sa.String(32),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _when("expires_at", nullable=False),
        _when("last_active_at", nullable=False),
        sa.Column("created_ip", sa.String(64)),
        sa.Column("user_agent", sa.String(512)),
    )
    op.create_index("ix_auth_sessions_user_id", "auth_sessions", ["user_id"])
    op.create_index("ix_auth_sessions_expires_at", "auth_sessions", ["expires_at"])

    op.create_table(
        "auth_refresh_tokens",
        _id(),
        _created_at(),
        sa.Column(
            "session_id",
            sa.String(32),
            sa.ForeignKey("auth_sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("parent_id", sa.String(32)),
        _when("expires_at", nullable=False),
        _when("first_used_at"),
    )
    op.create_index(
        "ix_auth_refresh_tokens_token_hash", "auth_refresh_tokens", ["token_hash"], unique=True
    )
    op.create_index("ix_auth_refresh_tokens_session_id", "auth_refresh_tokens", ["session_id"])
    op.create_index("ix_auth_refresh_tokens_parent_id", "auth_refresh_tokens", ["parent_id"])
    op.create_index("ix_auth_refresh_tokens_expires_at", "auth_refresh_tokens", ["expires_at"])

    op.create_table(
        "auth_rate_limits",
        sa.Column("identifier", sa.String(400), primary_key=True),
        sa.Column("attempts_left", sa.Float(), nullable=False),
        _when("last_attempt_at", nullable=False),
    )
    op.create_index("ix_auth_rate_limits_last_attempt_at", "auth_rate_limits", ["last_attempt_at"])

    op.create_table(
        "auth_revocations",
        sa.Column("session_id", sa.String(32), primary_key=True),
        _when("revoked_at", nullable=False),
        _when("expires_at", nullable=False),
    )
    op.create_index("ix_auth_revocations_revoked_at", "auth_revocations", ["revoked_at"])
    op.create_index("ix_auth_revocations_expires_at", "auth_revocations", ["expires_at"])

    op.create_table(
        "auth_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        _created_at(),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=False),
        sa.Column("private_pem", sa.Text()),
    )


def downgrade() -> None:
    for table in (
        "auth_keys",
        "auth_revocations",
        "auth_rate_limits",
        "auth_refresh_tokens",
        "auth_sessions",
        "auth_accounts",
        "users",
    ):
        op.drop_table(table)
