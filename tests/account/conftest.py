"""Fixtures for the account suite: the notes demo in-process (httpx ASGITransport) on SQLite
and PostgreSQL, with anonymous users on, fast hashing, the fake clock and a recorded event
stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from authbridge import AuthConfig, AuthMiddleware
from authbridge.events import AuthEvent
from examples.notes.app import create_app
from tests.toolkit.clients import asgi_client
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import FAST_PASSWORDS, PASSWORD, signing_key

BASE = "http://127.0.0.1"
HTML = {"accept": "text/html,application/xhtml+xml"}
FORM = {"origin": BASE, "referer": BASE + "/account", **HTML}


@dataclass
class Demo:
    """The notes demo and what it recorded."""

    app: AuthMiddleware
    clock: FakeClock
    events: list[AuthEvent] = field(default_factory=list)
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def browser(self) -> httpx.AsyncClient:
        """A new browser (its own cookie jar)."""
        client = asgi_client(self.app, BASE)
        self.clients.append(client)
        return client

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    async def sign_in(
        self, client: httpx.AsyncClient, provider: str, **params: Any
    ) -> dict[str, Any]:
        response = await client.post(
            "/api/auth/signin", json={"provider": provider, "params": params}
        )
        body: dict[str, Any] = response.json()
        return body

    async def sign_up(self, client: httpx.AsyncClient, email: str) -> dict[str, Any]:
        body = await self.sign_in(client, "password", flow="signUp", email=email, password=PASSWORD)
        assert body.get("signedIn") is True, body
        return body

    async def add_note(self, client: httpx.AsyncClient, text: str) -> None:
        response = await client.post(
            "/notes", data={"text": text}, headers={"origin": BASE, **HTML}
        )
        assert response.status_code == 303, response.text

    async def notes_of(self, user_id: str) -> list[str]:
        notes = self.app.auth.store.tables.metadata.tables["notes"]
        async with self.app.auth.store.read() as conn:
            rows = await conn.execute(
                select(notes.c.text).where(notes.c.user_id == user_id).order_by(notes.c.id)
            )
            return [r.text for r in rows]

    async def rows_of(self, user_id: str, session_ids: list[str]) -> dict[str, int]:
        """Rows anywhere in the schema that still belong to this user or its sessions."""
        metadata = self.app.auth.store.tables.metadata
        counts: dict[str, int] = {}
        async with self.app.auth.store.read() as conn:
            for table in metadata.sorted_tables:
                for name, value in (("user_id", user_id), ("session_id", None)):
                    column = table.c.get(name)
                    if column is None or table.name == "auth_revocations":
                        continue
                    where = column == value if value else column.in_(session_ids)
                    counts[f"{table.name}.{name}"] = (
                        await conn.execute(select(func.count()).select_from(table).where(where))
                    ).scalar_one()
            users = metadata.tables["users"]
            counts["users"] = (
                await conn.execute(
                    select(func.count()).select_from(users).where(users.c.id == user_id)
                )
            ).scalar_one()
        return counts


@pytest.fixture
async def demo(db_url: str, clock: FakeClock) -> AsyncIterator[Demo]:
    config = AuthConfig(
        database_url=db_url,
        password=FAST_PASSWORDS,
        jwt_private_keys=(signing_key(),),
        anonymous=True,
    )
    events: list[AuthEvent] = []
    app = create_app(config, clock=clock, on_event=events.append)
    running = Demo(app, clock, events)
    await app.auth.open()
    yield running
    for client in running.clients:
        await client.aclose()
    await app.auth.close()
