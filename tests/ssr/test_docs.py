"""The SSR page of the docs (docs/concepts/ssr.md): its templates are written to disk, its
Python blocks run, and the apps they build render what the text promises."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authbridge import Auth, AuthConfig, AuthMiddleware, get_auth_user_id
from tests.toolkit.clients import asgi_client, sign_up
from tests.toolkit.databases import sqlite_url
from tests.toolkit.servers import serve

from .conftest import BASE, island

PAGE = Path(__file__).resolve().parents[2] / "docs" / "concepts" / "ssr.md"
TEXT = PAGE.read_text(encoding="utf-8")
PYTHON = re.findall(r"```python\n(.*?)```", TEXT, re.S)
TEMPLATE_RE = re.compile(r"```html\n\{# templates/(\S+) #\}\n(.*?)```", re.S)
TEMPLATES: dict[str, str] = dict(TEMPLATE_RE.findall(TEXT))

Block = Callable[[int], dict[str, Any]]


def test_section_has_the_blocks_this_suite_runs() -> None:
    assert len(PYTHON) == 3
    assert set(TEMPLATES) == {"base.html", "home.html", "account.html"}


@pytest.fixture
async def run_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Block]:
    """Run block ``i`` the way the README harness does: in a fresh directory holding the
    section's templates, configured only through the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", sqlite_url(tmp_path, "docs"))
    (tmp_path / "templates").mkdir()
    for name, body in TEMPLATES.items():
        (tmp_path / "templates" / name).write_text(body, encoding="utf-8")
    apps: list[AuthMiddleware] = []

    def run(index: int) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__name__": f"ssr_doc_block_{index}"}
        exec(compile(PYTHON[index], f"ssr.md block {index}", "exec"), namespace)
        apps.append(namespace["app"])
        return namespace

    yield run
    for app in apps:
        await app.auth.close()


def client_of(app: Any) -> httpx.AsyncClient:
    return asgi_client(app, BASE)


async def test_templates_block_renders_both_states_and_the_user(run_block: Block) -> None:
    app = run_block(0)["app"]
    async with client_of(app) as client:
        home = await client.get("/")
        assert 'data-auth-state="signed-out"' in home.text
        assert 'id="signin"' in home.text
        assert island(home.text)["isAuthenticated"] is False
        assert home.headers["vary"] == "Cookie"
        redirected = await client.get("/account", headers={"accept": "text/html"})
        assert redirected.headers["location"] == "/signin?next=%2Faccount"

        me = await sign_up(client, "docs@example.com")
        home = await client.get("/")
        assert 'data-auth-state="signed-in"' in home.text
        assert f"session {me['sessionId']}" in home.text
        account = await client.get("/account")
        assert '<p id="email">docs@example.com</p>' in account.text


async def test_async_environment_block_loads_the_user_lazily(run_block: Block) -> None:
    app = run_block(1)["app"]
    async with client_of(app) as client:
        await sign_up(client, "lazy@example.com")
        account = await client.get("/account")
        assert '<p id="email">lazy@example.com</p>' in account.text
        assert island(account.text)["isAuthenticated"] is True


async def test_helpers_block_redirects_and_calls_another_service(
    run_block: Block, tmp_path: Path
) -> None:
    namespace = run_block(2)
    app = namespace["app"]

    async def whoami(request: Request) -> Response:
        return JSONResponse({"userId": get_auth_user_id(request)})

    # The other service shares the database (and so the development signing key).
    api_auth = Auth(AuthConfig(database_url=sqlite_url(tmp_path, "docs")))
    api = AuthMiddleware(Starlette(routes=[Route("/whoami", whoami)]), api_auth)
    try:
        async with serve(api) as api_url, client_of(app) as client:
            namespace["API_URL"] = api_url
            anonymous = await client.get("/dashboard")
            assert anonymous.status_code == 303
            assert anonymous.headers["location"] == "/signin?next=/dashboard"
            admin = await client.get("/admin/users")
            assert admin.status_code == 303 and admin.headers["location"] == "/"

            me = await sign_up(client, "helpers@example.com")
            dashboard = await client.get("/dashboard")
            assert dashboard.json() == {"api": {"userId": me["userId"]}}
            assert (await client.get("/admin/users")).status_code == 303
    finally:
        await api_auth.close()
