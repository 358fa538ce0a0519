"""Alembic migrations for the auth tables, shipped inside the package.

``authbridge db upgrade`` applies them; an application can do the same in code::

    from authbridge.migrations import upgrade
    async with engine.begin() as conn:
        await conn.run_sync(upgrade)

or from its own Alembic setup with ``script_location = authbridge:migrations`` (the revisions are
recorded in their own version table, :data:`VERSION_TABLE`, so they never collide with the
application's migrations). :func:`upgrade_sql` (``authbridge db upgrade --sql``) writes the same
steps as an SQL script instead, without connecting. The migrations create the tables of
:func:`~authbridge.store.tables.build_tables` without application-added ``users`` columns; add those
in the application's own migrations.
"""

from __future__ import annotations

import io

from .._extras import require

require("alembic", "cli", "authbridge's migrations (`authbridge db ...`)")

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import inspect  # noqa: E402
from sqlalchemy.engine import Connection  # noqa: E402

from ..store.dialect import lock_schema_changes  # noqa: E402

__all__ = [
    "BASELINE_REVISION",
    "SCRIPT_LOCATION",
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "head_revision",
    "stamp",
    "upgrade",
    "upgrade_sql",
]

SCRIPT_LOCATION = "authbridge:migrations"
"""Where Alembic finds these migrations (a package resource, valid wherever authbridge is)."""

VERSION_TABLE = "authbridge_alembic_version"
"""The table recording which of these migrations a database has."""

BASELINE_REVISION = "0001"
"""The schema ``Auth(create_tables=True)`` / ``authbridge db init`` produced before migrations
were applied; a database that has the tables but no version row is stamped with it."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic :class:`~alembic.config.Config` for these migrations.

    Args:
        connection: run on this (sync) connection; without it ``env.py`` connects to
            ``AuthConfig.from_env().database_url``.
    """
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of authbridge."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (``None``: never migrated)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(connection: Connection, revision: str = "head") -> tuple[str | None, str]:
    """Bring the auth tables up to ``revision`` on ``connection`` (inside its transaction).

    Concurrent upgrades (several instances deploying at once) are serialised.
    A database whose tables were created without migrations (``create_tables=True``,
    ``authbridge db init`` before it stamped) is first stamped with :data:`BASELINE_REVISION`.

    Returns ``(revision before, revision after)``.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database failed; nothing is committed by this function.
    """
    lock_schema_changes(connection)
    before = current_revision(connection)
    config = alembic_config(connection)
    if before is None and inspect(connection).has_table("auth_sessions"):
        command.stamp(config, BASELINE_REVISION)
        before = BASELINE_REVISION
    command.upgrade(config, revision)
    return before, current_revision(connection) or ""


def upgrade_sql(url: str, revision: str = "head", *, start: str | None = None) -> str:
    """The SQL script that brings a database of ``url``'s kind (SQLite or PostgreSQL) from
    ``start`` to ``revision``, for review or for applying by hand (Alembic's offline mode).

    Nothing connects to ``url``: only its dialect counts. The script runs in one transaction and
    records the revision in :data:`VERSION_TABLE`. It is written for a database the migrations
    made (or stamped) at ``start``, by default an empty one; tables created without migrations
    (``create_tables=True``) are adopted only by :func:`upgrade`, which looks at them first.

    Raises:
        alembic.util.CommandError: ``start`` or ``revision`` is not a known revision.
    """
    config = alembic_config()
    config.attributes["url"] = url
    config.output_buffer = io.StringIO()
    command.upgrade(config, f"{start}:{revision}" if start else revision, sql=True)
    return config.output_buffer.getvalue()


def stamp(connection: Connection, revision: str = "head") -> None:
    """Record ``revision`` as applied without running anything (after ``create_all``)."""
    lock_schema_changes(connection)
    command.stamp(alembic_config(connection), revision)
