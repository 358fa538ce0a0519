"""``auth_bootstrap()``: the JSON state island (a contract with the browser client) and the
client script tag — escaping, nonce, sharing mode, tab slot and route prefix."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from authbridge import Auth, AuthConfig, AuthMiddleware, AuthState, ssr
from authbridge.endpoints import client_script_url
from authbridge.state import SCOPE_ENGINE
from tests.toolkit.clients import ClientFactory, sign_up

from .conftest import ISLAND_RE, island

ISLAND_KEYS = {
    "isAuthenticated",
    "userId",
    "sessionId",
    "expiresAt",
    "sharing",
    "tab",
    "prefix",
    "refreshMarginMs",
    "allowedOrigins",
}


def scope_with(state: AuthState, config: AuthConfig | None = None) -> dict[str, Any]:
    """A request scope as the middleware leaves it (the engine only provides its config)."""
    engine = SimpleNamespace(config=config or AuthConfig())
    return {"type": "http", "path": "/", "headers": [], "auth": state, SCOPE_ENGINE: engine}


def test_bootstrap_is_markup_with_the_island_then_the_script() -> None:
    expires = datetime(2030, 1, 1, 1, tzinfo=timezone.utc)
    scope = scope_with(
        AuthState(user_id="u1", session_id="s1", token="t", expires_at=expires, source="cookie")
    )
    out = ssr.auth_bootstrap(scope)
    assert isinstance(out, Markup)
    data = json.dumps(
        {
            "isAuthenticated": True,
            "userId": "u1",
            "sessionId": "s1",
            "expiresAt": int(expires.timestamp() * 1000),
            "sharing": "shared",
            "tab": None,
            "prefix": "/api/auth",
            "refreshMarginMs": 60000,
            "allowedOrigins": [],
        },
        separators=(",", ":"),
    )
    assert str(out) == (
        f'<script id="authbridge-state" type="application/json">{data}</script>\n'
        f'<script src="{client_script_url("/api/auth")}"></script>'
    )


def test_island_has_exactly_the_contract_keys_and_never_the_tokens() -> None:
    scope = scope_with(AuthState(user_id="u1", session_id="s1", token="the-jwt", claims={"a": 1}))
    out = str(ssr.auth_bootstrap(scope))
    assert set(island(out)) == ISLAND_KEYS
    assert "the-jwt" not in out


HOSTILE = '</script><script>alert(1)</script><!-- & \u2028\u2029 "quoted"'


def test_island_escapes_everything_that_could_end_the_script() -> None:
    scope = scope_with(AuthState(user_id=HOSTILE, session_id=HOSTILE, tab="tab-123456"))
    out = str(ssr.auth_bootstrap(scope))
    body = ISLAND_RE.search(out)
    assert body is not None
    raw = body.group(1)
    for char in ("<", ">", "&", "\u2028", "\u2029"):
        assert char not in raw
    assert "\\u003c/script\\u003e" in raw and "\\u2028" in raw
    assert out.count("</script>") == 2
    # Still JSON that decodes to the original values.
    assert json.loads(raw)["userId"] == HOSTILE


def test_nonce_is_added_to_both_tags_and_escaped() -> None:
    scope = scope_with(AuthState())
    out = str(ssr.auth_bootstrap(scope, nonce='r4nd"><x'))
    assert out.count(' nonce="r4nd&#34;&gt;&lt;x"') == 2
    assert "<x" not in out


def test_template_global_passes_the_nonce() -> None:
    env = ssr.install(jinja2.Environment(autoescape=True))
    out = env.from_string('{{ auth_bootstrap(nonce="abc") }}').render(
        request=scope_with(AuthState())
    )
    assert out.count(' nonce="abc"') == 2


def test_bootstrap_without_the_middleware_fails_loudly() -> None:
    env = ssr.install(jinja2.Environment(autoescape=True))
    with pytest.raises(RuntimeError, match="AuthMiddleware"):
        env.from_string("{{ auth_bootstrap() }}").render(request={"type": "http"})


def bootstrap_app(auth: Auth) -> AuthMiddleware:
    env = ssr.install(jinja2.Environment(autoescape=True))
    template = env.from_string("<head>{{ auth_bootstrap() }}</head>")

    async def page(request: Request) -> Response:
        return HTMLResponse(template.render(ssr.context(request)))

    return AuthMiddleware(Starlette(routes=[Route("/", page)]), auth)


async def test_per_tab_island_names_the_slot_the_page_was_rendered_for(
    auth_factory: Callable[..., Awaitable[Auth]], client_factory: ClientFactory
) -> None:
    auth = await auth_factory(session_sharing="per_tab")
    client = client_factory(bootstrap_app(auth))
    first, second = {"x-authbridge-tab": "tab-aaaaaa"}, {"x-authbridge-tab": "tab-bbbbbb"}
    signed_up = await client.post(
        "/api/auth/signin",
        headers=first,
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": "tabs@example.com", "password": "x" * 12},
        },
    )
    assert signed_up.status_code == 200, signed_up.text

    mine = island((await client.get("/", headers=first)).text)
    assert mine["sharing"] == "per_tab"
    assert mine["tab"] == "tab-aaaaaa"
    assert mine["isAuthenticated"] is True
    assert mine["userId"] == signed_up.json()["userId"]

    other = island((await client.get("/", headers=second)).text)
    assert other["tab"] == "tab-bbbbbb"
    assert other["isAuthenticated"] is False

    no_tab = island((await client.get("/")).text)
    assert no_tab["tab"] is None


async def test_island_and_script_follow_a_custom_route_prefix(
    auth_factory: Callable[..., Awaitable[Auth]], client_factory: ClientFactory
) -> None:
    auth = await auth_factory(route_prefix="/auth")
    client = client_factory(bootstrap_app(auth))
    page = await client.get("/")
    assert island(page.text)["prefix"] == "/auth"
    assert f'<script src="{client_script_url("/auth")}"></script>' in page.text
    script = await client.get(client_script_url("/auth"))
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")


async def test_bootstrap_marks_the_page_private(auth: Auth, client_factory: ClientFactory) -> None:
    client = client_factory(bootstrap_app(auth))
    await sign_up(client)
    page = await client.get("/")
    assert page.headers["cache-control"] == "private"
    assert page.headers["vary"] == "Cookie"
