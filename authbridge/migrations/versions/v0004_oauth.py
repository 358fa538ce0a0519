"""OAuth: auth_verifiers (state, PKCE verifier and nonce of flows in progress) and
auth_provider_tokens (a provider's access/refresh tokens, encrypted, when asked to keep them).

Both tables are new, so a database whose tables were created without migrations
(``create_tables=True``, adopted by ``authbridge db upgrade``) may already have them: they are
created only when missing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from authbridge.migrations._present import present_tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    existing = present_tables()
    if "auth_verifiers" not in existing:
        _create_verifiers()
    if "auth_provider_tokens" not in existing:
        _create_provider_tokens()


def _create_verifiers() -> None:
    op.create_table(
        "auth_verifiers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("browser_hash", sa.String(64), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("nonce", sa.String(128)),
        sa.Column("redirect_to", sa.Text()),
        sa.Column("tab", sa.String(40)),
        sa.Column("link_user_id", sa.String(32)),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_auth_verifiers_expires_at", "auth_verifiers", ["expires_at"])


def _create_provider_tokens() -> None:
    op.create_table(
        "auth_provider_tokens",
        sa.Column(
            "account_id",
            sa.String(32),
            sa.ForeignKey("auth_accounts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text()),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("scope", sa.Text()),
    )


def downgrade() -> None:
    op.drop_table("auth_provider_tokens")
    op.drop_index("ix_auth_verifiers_expires_at", table_name="auth_verifiers")
    op.drop_table("auth_verifiers")
