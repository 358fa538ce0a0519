"""``examples/fastapi_api``: middleware-protected routes, the user dependency, a rendered page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from authbridge import AuthConfig, AuthMiddleware
from examples.fastapi_api.app import create_app
from tests.toolkit.clients import bearer_token, sign_up
from tests.toolkit.engines import FAST_PASSWORDS

from .example_helpers import HTML, island, parse


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[AuthMiddleware]:
    url = f"sqlite+aiosqlite:///{tmp_path}/fastapi.db"
    made = create_app(AuthConfig(database_url=url, password=FAST_PASSWORDS))
    yield made
    await made.auth.close()


@pytest.fixture
async def client(app: AuthMiddleware) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


async def test_signed_out_requests_are_refused_or_anonymous(client: httpx.AsyncClient) -> None:
    protected = await client.get("/api/private/reports")
    assert protected.status_code == 401
    assert protected.json() == {"error": "Unauthenticated"}
    assert protected.headers["www-authenticate"].startswith("Bearer")

    me = await client.get("/api/me")
    assert me.status_code == 401
    assert me.headers["www-authenticate"] == 'Bearer realm="authbridge"'
    assert me.json() == {"detail": "Unauthenticated"}

    assert (await client.get("/api/status")).json() == {"signedIn": False}
    page = parse((await client.get("/", headers=HTML)).text)
    assert page.find_all("body")[0].attrs["data-auth-state"] == "signed-out"
    assert island(page)["isAuthenticated"] is False


async def test_signed_in_requests_see_the_user(client: httpx.AsyncClient) -> None:
    me = await sign_up(client, "fast@example.com")
    assert (await client.get("/api/me")).json() == {
        "userId": me["userId"],
        "email": "fast@example.com",
        "sessionId": me["sessionId"],
    }
    assert (await client.get("/api/status")).json() == {"signedIn": True}
    reports = await client.get("/api/private/reports")
    assert reports.json() == {"owner": me["userId"], "reports": []}

    response = await client.get("/", headers=HTML)
    page = parse(response.text)
    assert page.find_all("body")[0].attrs["data-auth-state"] == "signed-in"
    assert page.get("user-email").text() == "fast@example.com"
    assert island(page)["userId"] == me["userId"]
    assert response.headers["cache-control"] == "private"


async def test_bearer_tokens_work_without_cookies(
    client: httpx.AsyncClient, app: AuthMiddleware
) -> None:
    me = await sign_up(client, "bearer@example.com")
    token = await bearer_token(client)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://127.0.0.1",
        headers={"authorization": f"Bearer {token}"},
    ) as api_client:
        assert (await api_client.get("/api/me")).json()["userId"] == me["userId"]
        assert (await api_client.get("/api/private/reports")).status_code == 200


async def test_openapi_declares_the_bearer_scheme_on_routes_with_a_user_dependency(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schema["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert schema["paths"]["/api/me"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/api/status"]["get"]
    docs = await client.get("/docs")
    assert docs.status_code == 200
