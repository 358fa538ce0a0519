"""What a revision finds already there, so it adds only what is missing.

Tables made by ``create_tables()`` (or ``authbridge db init`` before it stamped) of a later
version already have that version's schema, yet are adopted at :data:`BASELINE_REVISION`; the
revisions after it look before they add. Offline (``alembic upgrade --sql``, ``authbridge db
upgrade --sql``) there is no database to look at: the script is for a database the earlier
revisions made, so nothing a revision adds is there yet, and both answers are empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__ = ["present_columns", "present_tables"]


def _offline() -> bool:
    return bool(op.get_context().as_sql)


def present_tables() -> set[str]:
    """The database's tables (offline: none)."""
    if _offline():
        return set()
    return set(sa.inspect(op.get_bind()).get_table_names())


def present_columns(table: str) -> set[str]:
    """The names of ``table``'s columns (offline: none)."""
    if _offline():
        return set()
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}
