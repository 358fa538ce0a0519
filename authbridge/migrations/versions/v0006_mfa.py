"""Sessions record when and how the user authenticated (``auth_time``, ``amr``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    have = {c["name"] for c in inspector.get_columns("auth_sessions")}
    # Tables made by create_tables() before any migration ran already have the columns.
    wanted = (sa.Column("auth_time", sa.DateTime(timezone=True)), sa.Column("amr", sa.String(64)))
    missing = [column for column in wanted if column.name not in have]
    if missing:
        with op.batch_alter_table("auth_sessions") as batch:
            for column in missing:
                batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("amr")
        batch.drop_column("auth_time")
