"""Fixtures for the SSR suite: in-process clients, sign-up helpers, the state island parser and a
counter of ``users`` queries.

The shared ``db_url`` fixture is narrowed to SQLite: rendering does not depend on the backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import uvicorn
from sqlalchemy import event

from authbridge import Auth

BASE = "http://127.0.0.1"
PASSWORD = "correct horse battery staple"
ISLAND_RE = re.compile(
    r'<script id="authbridge-state" type="application/json"(?: nonce="[^"]*")?>(.*?)</script>', re.S
)

ClientFactory = Callable[..., httpx.AsyncClient]


class Clock(Protocol):
    """The shared ``clock`` fixture (``tests/conftest.py`` FakeClock)."""

    now: datetime

    def __call__(self) -> datetime: ...

    def advance(self, delta: float | timedelta) -> None: ...


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only (see the module docstring)."""
    return f"sqlite+aiosqlite:///{tmp_path}/auth.db"


@pytest.fixture
async def client_factory() -> AsyncIterator[ClientFactory]:
    """In-process clients on ``http://127.0.0.1`` (plain cookie names), closed after the test."""
    made: list[httpx.AsyncClient] = []

    def factory(app: Any, base_url: str = BASE, **kwargs: Any) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base_url, **kwargs
        )
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


async def sign_up(client: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, Any]:
    """Sign up through the JSON endpoint; the client's jar keeps the cookies."""
    response = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": email, "password": PASSWORD},
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def island(html: str) -> dict[str, Any]:
    """The JSON state island of a rendered page."""
    match = ISLAND_RE.search(html)
    assert match is not None, html
    data: dict[str, Any] = json.loads(match.group(1))
    return data


class QueryLog:
    """SQL statements run on an engine's database, for "at most one query" assertions."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def on(self, table: str) -> list[str]:
        """SELECTs reading ``table``."""
        pattern = re.compile(rf"^\s*SELECT\b.*\bFROM {table}\b", re.S | re.I)
        return [s for s in self.statements if pattern.search(s)]


@contextlib.contextmanager
def count_queries(auth: Auth) -> Iterator[QueryLog]:
    """Record every statement ``auth``'s engine runs inside the block."""
    log = QueryLog()
    engine = auth.store.engine.sync_engine

    def record(*args: Any) -> None:
        log.statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", record)


@contextlib.asynccontextmanager
async def uvicorn_server(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with a real uvicorn on a free 127.0.0.1 port, in this event loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
