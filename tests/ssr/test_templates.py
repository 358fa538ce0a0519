"""Real templates rendered through the middleware: what the HTML says in each auth state, how
the users row is loaded (at most one query, none when unused), and the cache headers."""

from __future__ import annotations

import html as html_lib
from collections.abc import Awaitable, Callable
from typing import Any

import jinja2
import pytest
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from authbridge import Auth, AuthMiddleware, ssr
from authbridge.endpoints import client_script_url
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.sql import record_statements

from .conftest import island

TEMPLATES = {
    "base.html": (
        "<!doctype html><html><head>{{ auth_bootstrap() }}</head>"
        '<body data-auth-state="{{ "signed-in" if auth.is_authenticated else "signed-out" }}">'
        "{% block body %}{% endblock %}</body></html>"
    ),
    "page.html": (
        '{% extends "base.html" %}{% block body %}'
        "{% if auth.is_authenticated %}"
        '<p id="user-id">{{ auth.user_id }}</p><p id="session-id">{{ auth.session_id }}</p>'
        '<p id="nick">{{ auth.claims.nick }}</p>'
        '{% else %}<a id="signin" href="/signin">Sign in</a>{% endif %}'
        '{% include "footer.html" %}{% endblock %}'
    ),
    "footer.html": '<footer id="footer">{{ "in" if is_authenticated() else "out" }}</footer>',
    "profile.html": (
        '{% extends "base.html" %}{% block body %}{% set user = auth.user() %}'
        '<p id="email">{{ user.email if user else "" }}</p>'
        '<p id="name">{{ user.name if user else "" }}</p>'
        '<p id="again">{{ auth.user().email if auth.is_authenticated else "" }}</p>'
        "{% endblock %}"
    ),
    "token.html": '<p id="token">{{ auth_token() }}</p>',
    "plain.html": "<p>no auth here</p>",
}


def sync_templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True)
    templates = Jinja2Templates(env=env)
    ssr.install(templates)
    return templates


def async_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.DictLoader(TEMPLATES), autoescape=True, enable_async=True
    )
    return ssr.install(env)


Endpoint = Callable[[Request], Awaitable[Response]]


def site(auth: Auth) -> AuthMiddleware:
    """Sync Jinja2Templates pages under /, async-environment pages under /async/."""
    templates = sync_templates()
    env = async_env()

    def sync_page(name: str) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return templates.TemplateResponse(request, name)

        return endpoint

    def async_page(name: str) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return HTMLResponse(await ssr.render(env, request, name))

        return endpoint

    async def preloaded_profile(request: Request) -> Response:
        variables = await ssr.context(request, load_user=True)
        return templates.TemplateResponse(request, "profile.html", variables)

    routes = [Route(f"/{n}", sync_page(f"{n}.html")) for n in ("page", "token", "plain")]
    routes += [Route(f"/async/{n}", async_page(f"{n}.html")) for n in ("page", "profile")]
    routes.append(Route("/profile", preloaded_profile))
    return AuthMiddleware(Starlette(routes=routes), auth)


def text_of(html: str, element_id: str) -> str:
    marker = f'id="{element_id}">'
    start = html.index(marker) + len(marker)
    return html_lib.unescape(html[start : html.index("<", start)])


async def test_signed_out_page_renders_the_signed_out_state(
    auth: Auth, client_factory: ClientFactory
) -> None:
    client = client_factory(site(auth))
    page = await client.get("/page")
    assert page.status_code == 200
    assert 'data-auth-state="signed-out"' in page.text
    assert 'id="signin"' in page.text and 'id="user-id"' not in page.text
    assert text_of(page.text, "footer") == "out"
    assert island(page.text) == {
        "isAuthenticated": False,
        "userId": None,
        "sessionId": None,
        "expiresAt": None,
        "sharing": "shared",
        "tab": None,
        "prefix": "/api/auth",
        "refreshMarginMs": 60000,
        "allowedOrigins": [],
    }


async def test_signed_in_page_renders_the_user_and_session(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    client = client_factory(site(auth))
    me = await sign_up(client)
    page = await client.get("/page")
    assert 'data-auth-state="signed-in"' in page.text
    assert text_of(page.text, "user-id") == me["userId"]
    assert text_of(page.text, "session-id") == me["sessionId"]
    assert text_of(page.text, "footer") == "in"
    expires_ms = int((clock.now + auth.config.jwt_duration).timestamp() * 1000)
    assert island(page.text) == {
        "isAuthenticated": True,
        "userId": me["userId"],
        "sessionId": me["sessionId"],
        "expiresAt": expires_ms,
        "sharing": "shared",
        "tab": None,
        "prefix": "/api/auth",
        "refreshMarginMs": 60000,
        "allowedOrigins": [],
    }


async def test_page_never_contains_the_refresh_token(
    auth: Auth, client_factory: ClientFactory
) -> None:
    client = client_factory(site(auth))
    await sign_up(client)
    refresh = client.cookies["authbridge.refresh"]
    for path in ("/page", "/token", "/profile", "/async/profile"):
        body = (await client.get(path)).text
        assert refresh not in body
        assert refresh.split(".")[1] not in body


async def test_bootstrap_loads_the_client_script_synchronously_after_the_island(
    auth: Auth, client_factory: ClientFactory
) -> None:
    page = await client_factory(site(auth)).get("/page")
    head = page.text[page.text.index("<head>") : page.text.index("</head>")]
    island_at = head.index('<script id="authbridge-state"')
    script_tag = f'<script src="{client_script_url("/api/auth")}"></script>'
    assert head.index(script_tag) > island_at
    assert " defer" not in head and " async" not in head


async def test_expired_token_is_refreshed_and_the_same_response_shows_the_new_state(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    client = client_factory(site(auth))
    me = await sign_up(client)
    old_token = client.cookies["authbridge.jwt"]
    clock.advance(auth.config.jwt_duration.total_seconds() + 1)

    page = await client.get("/page")
    assert 'data-auth-state="signed-in"' in page.text
    new_token = client.cookies["authbridge.jwt"]
    assert new_token != old_token
    state = island(page.text)
    assert state["isAuthenticated"] is True
    assert state["sessionId"] == me["sessionId"]
    assert state["expiresAt"] == int((clock.now + auth.config.jwt_duration).timestamp() * 1000)
    assert page.headers["cache-control"] == "private, no-store"

    token_page = await client.get("/token")
    assert text_of(token_page.text, "token") == new_token


async def test_token_helper_renders_the_token_of_the_same_response_after_refresh(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    client = client_factory(site(auth))
    await sign_up(client)
    clock.advance(auth.config.jwt_duration.total_seconds() + 1)
    page = await client.get("/token")
    assert text_of(page.text, "token") == client.cookies["authbridge.jwt"]


HOSTILE = '</script><script>alert("x")</script>\u2028<!--'


async def test_hostile_custom_claims_arrive_escaped(
    auth_factory: Callable[..., Awaitable[Auth]], client_factory: ClientFactory
) -> None:
    def claims(user_id: str, session_id: str) -> dict[str, Any]:
        return {"nick": HOSTILE}

    auth = await auth_factory(auth_kwargs={"custom_claims": claims})
    client = client_factory(site(auth))
    await sign_up(client)
    page = await client.get("/page")
    assert "<script>alert" not in page.text
    assert "&lt;/script&gt;&lt;script&gt;alert(&#34;x&#34;)" in page.text
    assert text_of(page.text, "nick") == HOSTILE
    assert island(page.text)["isAuthenticated"] is True
    assert page.text.count("<script") == 2


@pytest.mark.parametrize("path", ["/profile", "/async/profile"])
async def test_hostile_user_name_arrives_escaped(
    auth: Auth, client_factory: ClientFactory, path: str
) -> None:
    client = client_factory(site(auth))
    me = await sign_up(client)
    users = auth.store.tables.users
    async with auth.store.transaction() as conn:
        await conn.execute(update(users).where(users.c.id == me["userId"]).values(name=HOSTILE))
    page = await client.get(path)
    assert "<script>alert" not in page.text
    assert text_of(page.text, "name") == HOSTILE
    assert page.text.count("<script") == 2


@pytest.mark.parametrize("path", ["/page", "/async/page", "/profile", "/async/profile"])
async def test_pages_that_read_auth_are_private_and_vary_on_cookie(
    auth: Auth, client_factory: ClientFactory, path: str
) -> None:
    client = client_factory(site(auth))
    signed_out = await client.get(path)
    assert signed_out.headers["cache-control"] == "private"
    assert signed_out.headers["vary"] == "Cookie"
    await sign_up(client)
    signed_in = await client.get(path)
    assert signed_in.headers["cache-control"] == "private"
    assert signed_in.headers["vary"] == "Cookie"


async def test_pages_that_ignore_auth_keep_their_cache_headers(
    auth: Auth, client_factory: ClientFactory
) -> None:
    client = client_factory(site(auth))
    await sign_up(client)
    page = await client.get("/plain")
    assert "vary" not in page.headers and "cache-control" not in page.headers


@pytest.mark.parametrize(
    ("path", "user_queries"),
    [("/page", 0), ("/async/page", 0), ("/profile", 1), ("/async/profile", 1)],
)
async def test_user_row_costs_one_query_when_used_and_none_otherwise(
    auth: Auth, client_factory: ClientFactory, path: str, user_queries: int
) -> None:
    client = client_factory(site(auth))
    await sign_up(client, "grace@example.com")
    with record_statements(auth) as log:
        page = await client.get(path)
    assert page.status_code == 200
    assert len(log.selecting("users")) == user_queries
    if user_queries:
        # The template calls auth.user() twice; the row is loaded once.
        assert text_of(page.text, "email") == text_of(page.text, "again") == "grace@example.com"


@pytest.mark.parametrize("path", ["/profile", "/async/profile"])
async def test_signed_out_user_row_is_none_without_a_query(
    auth: Auth, client_factory: ClientFactory, path: str
) -> None:
    client = client_factory(site(auth))
    with record_statements(auth) as log:
        page = await client.get(path)
    assert log.sent == []
    assert text_of(page.text, "email") == ""
