"""Sessions record when and how the user authenticated (``auth_time``, ``amr``); second factors
(``auth_totp``, ``auth_recovery_codes``) and passkeys (``auth_passkeys``,
``auth_webauthn_challenges``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from authbridge.migrations._present import present_columns, present_tables

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    have = present_columns("auth_sessions")
    # Tables made by create_tables() before any migration ran already have the columns.
    wanted = (sa.Column("auth_time", sa.DateTime(timezone=True)), sa.Column("amr", sa.String(64)))
    missing = [column for column in wanted if column.name not in have]
    if missing:
        with op.batch_alter_table("auth_sessions") as batch:
            for column in missing:
                batch.add_column(column)
    tables = present_tables()
    if "auth_totp" not in tables:
        op.create_table(
            "auth_totp",
            _user_id(primary_key=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("sealed_secret", sa.String(128), nullable=False),
            sa.Column("confirmed_at", sa.DateTime(timezone=True)),
            sa.Column("last_step", sa.BigInteger),
        )
    if "auth_recovery_codes" not in tables:
        op.create_table(
            "auth_recovery_codes",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            _user_id(),
            sa.Column("code_hash", sa.String(64), nullable=False),
            sa.Column("used_at", sa.DateTime(timezone=True)),
        )
        op.create_index("ix_auth_recovery_codes_user_id", "auth_recovery_codes", ["user_id"])
        op.create_index(
            "ix_auth_recovery_codes_code_hash", "auth_recovery_codes", ["code_hash"], unique=True
        )

    if "auth_passkeys" not in tables:
        op.create_table(
            "auth_passkeys",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            _user_id(),
            sa.Column("credential_id", sa.String(1400), nullable=False),
            sa.Column("public_key", sa.Text, nullable=False),
            sa.Column("sign_count", sa.BigInteger, nullable=False),
            sa.Column("name", sa.String(100)),
            sa.Column("transports", sa.String(200)),
            sa.Column("backed_up", sa.Boolean, nullable=False),
            sa.Column("last_used_at", sa.DateTime(timezone=True)),
        )
        op.create_index(
            "ix_auth_passkeys_credential_id", "auth_passkeys", ["credential_id"], unique=True
        )
        op.create_index("ix_auth_passkeys_user_id", "auth_passkeys", ["user_id"])
    if "auth_webauthn_challenges" not in tables:
        op.create_table(
            "auth_webauthn_challenges",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE")),
            sa.Column("purpose", sa.String(16), nullable=False),
            sa.Column("challenge", sa.String(128), nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        )
        op.create_index(
            "ix_auth_webauthn_challenges_expires_at", "auth_webauthn_challenges", ["expires_at"]
        )


def _user_id(*, primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(
        "user_id",
        sa.String(32),
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def downgrade() -> None:
    op.drop_table("auth_webauthn_challenges")
    op.drop_table("auth_passkeys")
    op.drop_table("auth_recovery_codes")
    op.drop_table("auth_totp")
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("amr")
        batch.drop_column("auth_time")
