"""The same page behaviour on Starlette (``Jinja2Templates``), FastAPI (a dependency loads the
user), a raw ASGI app with a bare ``jinja2.Environment`` (sync and async), Litestar and Quart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jinja2
import litestar
import pytest
import quart
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from authbridge import Auth, AuthMiddleware, User, get_auth_user, ssr
from authbridge._asgi import Receive, Scope, Send
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.sql import record_statements

from .conftest import island

PAGE = (
    "<!doctype html><html><head>{{ auth_bootstrap() }}</head>"
    '<body data-auth-state="{{ "signed-in" if auth.is_authenticated else "signed-out" }}">'
    '{% if auth.is_authenticated %}<p id="user-email">{{ auth.user().email }}</p>'
    '<p id="session-id">{{ auth.session_id }}</p>{% endif %}</body></html>'
)


def loader() -> jinja2.DictLoader:
    return jinja2.DictLoader({"page.html": PAGE})


def starlette_site(auth: Auth) -> AuthMiddleware:
    templates = Jinja2Templates(env=jinja2.Environment(loader=loader(), autoescape=True))
    ssr.install(templates)

    async def page(request: Request) -> Response:
        return templates.TemplateResponse(
            request, "page.html", await ssr.context(request, load_user=True)
        )

    return AuthMiddleware(Starlette(routes=[Route("/", page)]), auth)


def fastapi_site(auth: Auth) -> AuthMiddleware:
    templates = Jinja2Templates(env=jinja2.Environment(loader=loader(), autoescape=True))
    ssr.install(templates)
    api = FastAPI()

    async def current_user(request: Request) -> User | None:
        return await get_auth_user(request)

    @api.get("/", response_class=HTMLResponse)
    async def page(request: Request, user: User | None = Depends(current_user)) -> Response:
        # The dependency loaded the row; the sync template's auth.user() reuses it.
        return templates.TemplateResponse(request, "page.html", {"user": user})

    return AuthMiddleware(api, auth)


def raw_asgi_site(auth: Auth) -> AuthMiddleware:
    env = ssr.install(jinja2.Environment(loader=loader(), autoescape=True))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        variables = await ssr.context(scope, load_user=True)
        body = env.get_template("page.html").render(variables).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return AuthMiddleware(app, auth)


def async_raw_asgi_site(auth: Auth) -> AuthMiddleware:
    env = ssr.install(jinja2.Environment(loader=loader(), autoescape=True, enable_async=True))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = (await ssr.render(env, scope, "page.html")).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return AuthMiddleware(app, auth)


def litestar_site(auth: Auth) -> AuthMiddleware:
    env = ssr.install(jinja2.Environment(loader=loader(), autoescape=True, enable_async=True))

    @litestar.get("/", media_type=litestar.MediaType.HTML)
    async def page(request: litestar.Request[Any, Any, Any]) -> str:
        return await ssr.render(env, request, "page.html")

    return AuthMiddleware(litestar.Litestar([page]), auth)


def quart_site(auth: Auth) -> AuthMiddleware:
    env = ssr.install(jinja2.Environment(loader=loader(), autoescape=True, enable_async=True))
    app = quart.Quart(__name__)

    @app.get("/")
    async def page() -> str:
        return await ssr.render(env, quart.request, "page.html")

    return AuthMiddleware(app, auth)


SITES: dict[str, Callable[[Auth], AuthMiddleware]] = {
    "starlette": starlette_site,
    "fastapi": fastapi_site,
    "raw-asgi": raw_asgi_site,
    "raw-asgi-async": async_raw_asgi_site,
    "litestar": litestar_site,
    "quart": quart_site,
}


@pytest.fixture(params=sorted(SITES))
def site(request: pytest.FixtureRequest) -> Callable[[Auth], AuthMiddleware]:
    return SITES[request.param]


async def test_page_renders_signed_out_then_signed_in(
    auth: Auth, client_factory: ClientFactory, site: Callable[[Auth], AuthMiddleware]
) -> None:
    client = client_factory(site(auth))
    signed_out = await client.get("/")
    assert 'data-auth-state="signed-out"' in signed_out.text
    assert island(signed_out.text)["isAuthenticated"] is False
    assert signed_out.headers["cache-control"] == "private"
    assert signed_out.headers["vary"] == "Cookie"

    me = await sign_up(client, "ada@example.com")
    with record_statements(auth) as log:
        signed_in = await client.get("/")
    assert 'data-auth-state="signed-in"' in signed_in.text
    assert '<p id="user-email">ada@example.com</p>' in signed_in.text
    assert f'<p id="session-id">{me["sessionId"]}</p>' in signed_in.text
    assert island(signed_in.text)["userId"] == me["userId"]
    assert signed_in.headers["cache-control"] == "private"
    assert signed_in.headers["vary"] == "Cookie"
    assert len(log.selecting("users")) == 1
