"""Security hardening: sealed child secrets on refresh tokens; the revocation feed ordered by a
database-assigned sequence.

``auth_refresh_tokens.sealed_secret``: a rotated child token's secret, AES-GCM sealed, kept only
while its parent's reuse window is open.
``auth_revocations.seq``: identity (PostgreSQL) / AUTOINCREMENT (SQLite) primary key read by
the feed instead of ``revoked_at``; ``session_id`` becomes a unique index. The table is rebuilt
with its rows copied, so revocations recorded before the upgrade stay in force.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from authbridge.migrations._present import present_columns

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _revocations(name: str, *, with_seq: bool) -> sa.Table:
    columns: list[sa.Column[Any]] = []
    if with_seq:
        columns.append(
            sa.Column(
                "seq",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                sa.Identity(),
                primary_key=True,
            )
        )
    columns += [
        sa.Column("session_id", sa.String(32), nullable=False, primary_key=not with_seq),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    ]
    return op.create_table(name, *columns, sqlite_autoincrement=with_seq)


def _rebuild_revocations(*, with_seq: bool) -> None:
    _revocations("auth_revocations_v0002", with_seq=with_seq)
    op.execute(
        "INSERT INTO auth_revocations_v0002 (session_id, revoked_at, expires_at)"
        " SELECT session_id, revoked_at, expires_at FROM auth_revocations ORDER BY revoked_at"
    )
    op.drop_table("auth_revocations")
    op.rename_table("auth_revocations_v0002", "auth_revocations")
    if op.get_context().dialect.name == "postgresql":
        # Keep constraint and sequence names as a fresh create_all would make them.
        old = "auth_revocations_v0002"
        op.execute(
            f"ALTER TABLE auth_revocations RENAME CONSTRAINT {old}_pkey TO auth_revocations_pkey"
        )
        if with_seq:
            op.execute(f"ALTER SEQUENCE {old}_seq_seq RENAME TO auth_revocations_seq_seq")


def upgrade() -> None:
    # Tables made by create_all (``create_tables=True``) of this version already have the new
    # schema, yet are stamped with the baseline revision: change only what is missing.
    if "sealed_secret" not in present_columns("auth_refresh_tokens"):
        op.add_column("auth_refresh_tokens", sa.Column("sealed_secret", sa.String(128)))
    if "seq" not in present_columns("auth_revocations"):
        _rebuild_revocations(with_seq=True)
        op.create_index(
            "ix_auth_revocations_session_id", "auth_revocations", ["session_id"], unique=True
        )
        op.create_index("ix_auth_revocations_expires_at", "auth_revocations", ["expires_at"])


def downgrade() -> None:
    _rebuild_revocations(with_seq=False)
    op.create_index("ix_auth_revocations_revoked_at", "auth_revocations", ["revoked_at"])
    op.create_index("ix_auth_revocations_expires_at", "auth_revocations", ["expires_at"])
    with op.batch_alter_table("auth_refresh_tokens") as batch:
        batch.drop_column("sealed_secret")
