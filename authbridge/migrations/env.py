"""Alembic environment for authbridge's own migrations.

Runs on the connection handed over in ``config.attributes["connection"]`` (what
:func:`authbridge.migrations.upgrade` and ``authbridge db upgrade`` do), or else connects to
``AuthConfig.from_env().database_url`` with the async engine (the ``alembic`` command line).
Offline (``--sql``: :func:`authbridge.migrations.upgrade_sql`, ``authbridge db upgrade --sql``)
it writes the SQL script for the kind of database of ``config.attributes["url"]`` (else that
same URL) without connecting, in one transaction on either backend.
SQLite gets ``render_as_batch`` so later migrations can alter tables.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from authbridge.config import AuthConfig
from authbridge.migrations import VERSION_TABLE
from authbridge.store.dialect import lock_schema_changes


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,
    )
    with context.begin_transaction():
        lock_schema_changes(connection)
        context.run_migrations()


def _database_url() -> str:
    url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
    return str(url) if url else AuthConfig.from_env().database_url


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


def _run() -> None:
    if context.is_offline_mode():
        # The script is written for the URL's kind of database, which is never connected to.
        url = _database_url()
        context.configure(
            url=url,
            version_table=VERSION_TABLE,
            literal_binds=True,
            render_as_batch=url.startswith("sqlite"),
            transactional_ddl=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
    else:
        asyncio.run(_run_async(_database_url()))


_run()
