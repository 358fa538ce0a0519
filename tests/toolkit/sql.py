"""The SQL statements an engine sends, recorded with SQLAlchemy's ``before_cursor_execute``
event, for "no query" / "one query" / "this query plan" assertions."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event

from authbridge import Auth

TRANSACTION_CONTROL = frozenset({"BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"})


@dataclass(frozen=True)
class Sent:
    """One statement as the driver received it."""

    sql: str
    parameters: Any


@dataclass
class StatementLog:
    """What an engine sent, oldest first."""

    sent: list[Sent] = field(default_factory=list)

    @property
    def statements(self) -> list[str]:
        """The SQL sent, without transaction control (``BEGIN``, ``COMMIT``...)."""
        return [s.sql for s in self.sent if s.sql.strip().upper() not in TRANSACTION_CONTROL]

    def selecting(self, table: str) -> list[str]:
        """The ``SELECT`` statements that read ``table``."""
        pattern = re.compile(rf"^\s*SELECT\b.*\bFROM {table}\b", re.S | re.I)
        return [s for s in self.statements if pattern.search(s)]

    def take(self) -> list[Sent]:
        """Everything sent since the last call (then starts again)."""
        taken, self.sent = self.sent, []
        return taken


@contextlib.contextmanager
def record_statements(auth: Auth) -> Iterator[StatementLog]:
    """Record every statement ``auth``'s engine sends while the block runs (``auth`` open)."""
    log = StatementLog()
    engine = auth.store.engine.sync_engine

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        log.sent.append(Sent(statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", record)
