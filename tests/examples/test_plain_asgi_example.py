"""``examples/plain_asgi``: the middleware around a raw ASGI app with a bare Jinja2 environment."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from authbridge import AuthConfig, AuthMiddleware
from examples.plain_asgi.app import create_app
from tests.toolkit.clients import sign_up
from tests.toolkit.engines import FAST_PASSWORDS

from .example_helpers import HTML, island, parse


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[AuthMiddleware]:
    url = f"sqlite+aiosqlite:///{tmp_path}/plain.db"
    made = create_app(AuthConfig(database_url=url, password=FAST_PASSWORDS))
    yield made
    await made.auth.close()


@pytest.fixture
async def client(app: AuthMiddleware) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


async def test_page_and_api_signed_out(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers=HTML)
    page = parse(response.text)
    assert page.find_all("body")[0].attrs["data-auth-state"] == "signed-out"
    assert island(page)["isAuthenticated"] is False
    assert response.headers["vary"] == "Cookie"
    assert (await client.get("/whoami")).json() == {"userId": None, "sessionId": None}
    assert (await client.get("/private/x")).status_code == 401
    redirected = await client.get("/private/x", headers=HTML)
    assert redirected.status_code == 303
    assert redirected.headers["location"] == "/signin?next=%2Fprivate%2Fx"
    assert (await client.get("/nowhere")).status_code == 404


async def test_page_and_api_signed_in(client: httpx.AsyncClient) -> None:
    me = await sign_up(client, "raw@example.com")
    page = parse((await client.get("/", headers=HTML)).text)
    assert page.find_all("body")[0].attrs["data-auth-state"] == "signed-in"
    assert page.get("user-email").text() == "raw@example.com"
    assert page.get("session-id").text() == me["sessionId"]
    assert island(page)["sessionId"] == me["sessionId"]
    assert (await client.get("/whoami")).json() == {
        "userId": me["userId"],
        "sessionId": me["sessionId"],
    }
    assert (await client.get("/private/x")).json() == {"secret": f"for {me['userId']} only"}


async def test_lifespan_opens_and_closes_the_engine(app: AuthMiddleware) -> None:
    await app.auth.close()
    received: list[MutableMapping[str, Any]] = [
        {"type": "lifespan.startup"},
        {"type": "lifespan.shutdown"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return received.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            assert app.auth.is_open
        sent.append(dict(message))

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert not app.auth.is_open
