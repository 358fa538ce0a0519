"""Convex ids on imported users and accounts (``authbridge import convex``), for mapping.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from authbridge.migrations._present import present_columns

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    for table in ("users", "auth_accounts"):
        # Tables made by create_tables() before any migration ran already have the column: they
        # are adopted at the baseline revision, and this step must not add it twice.
        if "convex_id" in present_columns(table):
            continue
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("convex_id", sa.String(64)))
            batch.create_index(f"ix_{table}_convex_id", ["convex_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("auth_accounts") as batch:
        batch.drop_index("ix_auth_accounts_convex_id")
        batch.drop_column("convex_id")
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_convex_id")
        batch.drop_column("convex_id")
