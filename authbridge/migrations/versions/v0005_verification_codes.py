"""auth_verification_codes: one-time codes and magic links (email sign-in, password reset,
email verification, phone sign-in), stored as hashes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from authbridge.migrations._present import present_tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    if "auth_verification_codes" in present_tables():
        return  # created by create_tables() from this version before the database was stamped
    op.create_table(
        "auth_verification_codes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE")),
        sa.Column("identifier", sa.String(320), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("link_hash", sa.String(64)),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts_left", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_auth_verification_codes_identifier_purpose",
        "auth_verification_codes",
        ["identifier", "purpose"],
        unique=True,
    )
    op.create_index(
        "ix_auth_verification_codes_expires_at", "auth_verification_codes", ["expires_at"]
    )
    op.create_index("ix_auth_verification_codes_user_id", "auth_verification_codes", ["user_id"])


def downgrade() -> None:
    op.drop_table("auth_verification_codes")
