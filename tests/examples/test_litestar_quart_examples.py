"""``examples/litestar_app`` (AuthPlugin + guard) and ``examples/quart_app`` (the middleware)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from authbridge import AuthConfig
from examples.litestar_app.app import create_app as create_litestar
from examples.quart_app.app import create_app as create_quart
from tests.toolkit.clients import sign_up
from tests.toolkit.engines import FAST_PASSWORDS

from .example_helpers import HTML, parse


@pytest.fixture(params=["litestar", "quart"])
async def client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    config = AuthConfig(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/ex.db", password=FAST_PASSWORDS
    )
    app: Any = create_litestar(config) if request.param == "litestar" else create_quart(config)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        yield c
    for plugin in getattr(app, "plugins", ()):
        auth = getattr(plugin, "auth", None)
        if auth is not None:
            await auth.close()
    if hasattr(app, "auth"):
        await app.auth.close()


async def test_signed_out_the_api_answers_401_with_a_bearer_challenge(
    client: httpx.AsyncClient,
) -> None:
    me = await client.get("/api/me")
    assert me.status_code == 401
    assert "Unauthenticated" in me.text


async def test_signed_in_the_api_sees_the_user(client: httpx.AsyncClient) -> None:
    body = await sign_up(client, "ex@example.com")
    me = (await client.get("/api/me")).json()
    assert (me["userId"], me["email"]) == (body["userId"], "ex@example.com")


async def test_the_built_in_sign_in_page_is_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/signin", headers=HTML)
    assert page.status_code == 200
    assert parse(page.text).get("signin-form").fields()["flow"] == "signIn"
