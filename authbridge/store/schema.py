"""Schema operations the CLI runs: create, upgrade (Alembic) and report the revision."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from .dialect import lock_schema_changes

if TYPE_CHECKING:
    from . import Store

__all__ = [
    "DatabaseError",
    "current_revision",
    "head_revision",
    "init_schema",
    "upgrade_schema",
    "url_password",
]

DatabaseError = SQLAlchemyError
"""The base of the database errors :func:`~authbridge.store.translate_errors` lets through."""


async def init_schema(store: Store) -> tuple[bool, str | None, str]:
    """Create the auth tables and stamp the head revision on an empty database; on a database
    that migrations already manage, upgrade it. Returns ``(created, before, after)``.

    Raises:
        StoreUnavailable: the database failed.
    """
    from .. import migrations

    async with store.transaction() as conn:
        await conn.run_sync(lock_schema_changes)
        current = await conn.run_sync(migrations.current_revision)
        if current is None:
            await conn.run_sync(store.tables.metadata.create_all)
            await conn.run_sync(migrations.stamp)
            return True, None, migrations.head_revision()
        before, after = await conn.run_sync(migrations.upgrade)
        return False, before, after


async def upgrade_schema(store: Store, revision: str) -> tuple[str | None, str]:
    """Run the Alembic migrations up to ``revision``. Returns ``(before, after)``.

    Raises:
        StoreUnavailable: the database failed.
    """
    from .. import migrations

    async with store.transaction() as conn:
        return await conn.run_sync(lambda sync: migrations.upgrade(sync, revision))


async def current_revision(store: Store) -> str | None:
    """The database's Alembic revision (``None``: not managed by migrations).

    Raises:
        StoreUnavailable: the database failed.
    """
    from .. import migrations

    async with store.read() as conn:
        return await conn.run_sync(migrations.current_revision)


def url_password(url: str) -> str | None:
    """The password in a database URL, if any (so logs can scrub it)."""
    try:
        password = make_url(url).password
    except Exception:  # an unparsable URL is reported by SQLAlchemy; nothing to scrub
        return None
    return str(password) if password else None


def head_revision() -> str:
    """The newest revision shipped with this version of authbridge."""
    from .. import migrations

    return migrations.head_revision()
