"""Rows that belong to a user, found through the schema: every table with a foreign key to
``users.id`` (and, transitively, tables keyed to those rows), plus any table with a ``user_id``
column (apps that key their rows by user without declaring a foreign key).

SQLite enforces no ``ON DELETE CASCADE`` unless each connection turns foreign keys on, so these
helpers delete and move rows explicitly, children first, on every backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Column, ColumnElement, Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["delete_with_children", "move_user_rows", "user_keyed_columns"]

_MAX_DEPTH = 8


def _children(table: Table) -> Iterator[tuple[Table, Column[Any], Column[Any]]]:
    """``(child table, child column, parent column)`` for every foreign key into ``table``."""
    for child in table.metadata.sorted_tables:
        if child is table:
            continue
        for fk in child.foreign_keys:
            if fk.column.table is table:
                yield child, fk.parent, fk.column


def user_keyed_columns(users: Table) -> list[Column[Any]]:
    """Columns that hold a user id: foreign keys to ``users.id`` and ``user_id`` columns."""
    found: list[Column[Any]] = [
        column for _, column, parent in _children(users) if parent is users.c.id
    ]
    for table in users.metadata.sorted_tables:
        column = table.c.get("user_id")
        if table is not users and column is not None and column not in found:
            found.append(column)
    return found


async def delete_with_children(
    conn: AsyncConnection, table: Table, where: ColumnElement[bool], depth: int = 0
) -> int:
    """Delete ``table``'s rows matching ``where`` after the rows that reference them. Returns
    how many rows of ``table`` went."""
    if depth < _MAX_DEPTH:
        for child, column, parent in _children(table):
            await delete_with_children(
                conn, child, column.in_(select(parent).where(where)), depth + 1
            )
    result = await conn.execute(delete(table).where(where))
    return int(result.rowcount or 0)


async def move_user_rows(conn: AsyncConnection, users: Table, source: str, target: str) -> None:
    """Point every row keyed to user ``source`` at user ``target``."""
    for column in user_keyed_columns(users):
        await conn.execute(
            update(column.table).where(column == source).values({column.name: target})
        )
