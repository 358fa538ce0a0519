"""The Next.js-style helpers (token, is_authenticated, route matcher, redirect, server-side
httpx client) and the Jinja2 plumbing (install, context, render)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jinja2
import pytest
from jinja2.runtime import Context
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from authbridge import Auth, AuthMiddleware, AuthState, get_auth_user_id, routing, ssr
from authbridge._asgi import Message
from authbridge.ssr._helpers import _Redirect
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.servers import serve

# -- auth_token / is_authenticated / route_matcher ----------------------------------------------


def test_token_and_is_authenticated_read_the_state_without_io() -> None:
    signed_in = {"auth": AuthState(user_id="u", session_id="s", token="jwt")}
    assert ssr.auth_token(signed_in) == "jwt"
    assert ssr.is_authenticated(signed_in) is True
    signed_out = {"auth": AuthState()}
    assert ssr.auth_token(signed_out) is None
    assert ssr.is_authenticated(signed_out) is False


def test_helpers_without_the_middleware_fail_loudly() -> None:
    with pytest.raises(RuntimeError, match="AuthMiddleware"):
        ssr.is_authenticated({"type": "http"})


def test_route_matcher_is_the_routing_one() -> None:
    assert ssr.route_matcher is routing.route_matcher
    matcher = ssr.route_matcher(["/notes/**", "/settings"])
    assert matcher("/notes") and matcher("/notes/1") and matcher("/settings")
    assert not matcher("/settings/x")


# -- redirect -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/notes", "/notes"),
        ("/notes?x=1#top", "/notes?x=1#top"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("notes", "/"),
        ("/a\r\nSet-Cookie: x=1", "/"),
    ],
)
def test_redirect_only_goes_to_same_site_paths(target: str, location: str) -> None:
    response = ssr.redirect({"type": "http"}, target)
    assert isinstance(response, RedirectResponse)
    assert response.status_code == 303
    assert response.headers["location"] == location


async def test_redirect_works_as_an_on_request_hook_answer(
    auth: Auth, client_factory: ClientFactory
) -> None:
    async def admins_only(scope: Any, state: AuthState) -> Any:
        if scope["path"].startswith("/admin"):
            return ssr.redirect(scope, "/")
        return None

    async def home(request: Request) -> Response:
        return JSONResponse({"home": True})

    app = AuthMiddleware(
        Starlette(routes=[Route("/", home), Route("/admin", home)]), auth, on_request=admins_only
    )
    response = await client_factory(app).get("/admin", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_fallback_redirect_is_a_plain_asgi_app() -> None:
    app = _Redirect("/next", 303)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "http"}, receive, send)
    assert sent[0]["status"] == 303
    assert (b"location", b"/next") in sent[0]["headers"]


# -- http_client ----------------------------------------------------------------------------------


def api_app(auth: Auth) -> AuthMiddleware:
    """A second service: answers who the bearer token belongs to."""

    async def whoami(request: Request) -> Response:
        state = request.scope["auth"]
        return JSONResponse(
            {
                "userId": get_auth_user_id(request),
                "source": state.source,
                "authorization": request.headers.get("authorization"),
            }
        )

    return AuthMiddleware(Starlette(routes=[Route("/whoami", whoami)]), auth)


def page_app(auth: Auth, **client_options: Any) -> AuthMiddleware:
    """A page that calls the second service while rendering, as the signed-in user."""

    async def page(request: Request) -> Response:
        async with ssr.http_client(request, **client_options) as client:
            answer = await client.get("/whoami")
        return JSONResponse({"status": answer.status_code, "api": answer.json()})

    return AuthMiddleware(Starlette(routes=[Route("/page", page)]), auth)


async def test_http_client_calls_another_asgi_app_with_the_bearer_token(
    auth_factory: Callable[..., Awaitable[Auth]], client_factory: ClientFactory
) -> None:
    site_auth, api_auth = await auth_factory(), await auth_factory()
    transport = httpx.ASGITransport(app=api_app(api_auth))
    client = client_factory(page_app(site_auth, transport=transport, base_url="http://api"))

    anonymous = (await client.get("/page")).json()
    assert anonymous["api"] == {"userId": None, "source": None, "authorization": None}

    me = await sign_up(client)
    signed_in = (await client.get("/page")).json()
    assert signed_in["api"]["userId"] == me["userId"]
    assert signed_in["api"]["source"] == "bearer"
    assert signed_in["api"]["authorization"] == f"Bearer {client.cookies['authbridge.jwt']}"


async def test_http_client_sends_the_token_refreshed_during_this_request(
    auth_factory: Callable[..., Awaitable[Auth]], client_factory: ClientFactory, clock: FakeClock
) -> None:
    site_auth, api_auth = await auth_factory(), await auth_factory()
    transport = httpx.ASGITransport(app=api_app(api_auth))
    client = client_factory(page_app(site_auth, transport=transport, base_url="http://api"))
    me = await sign_up(client)
    clock.advance(site_auth.config.jwt_duration.total_seconds() + 1)
    answer = (await client.get("/page")).json()
    assert answer["api"]["userId"] == me["userId"]
    assert answer["api"]["authorization"] == f"Bearer {client.cookies['authbridge.jwt']}"


def test_http_client_keeps_an_explicit_authorization_header() -> None:
    request = {"auth": AuthState(user_id="u", session_id="s", token="jwt")}
    client = ssr.http_client(request, headers={"Authorization": "Basic abc", "X-Trace": "1"})
    assert client.headers["authorization"] == "Basic abc"
    assert client.headers["x-trace"] == "1"
    plain = ssr.http_client(request, base_url="http://api", timeout=3)
    assert plain.headers["authorization"] == "Bearer jwt"
    assert str(plain.base_url) == "http://api"
    assert plain.timeout.read == 3


async def test_http_client_calls_a_real_server_with_the_bearer_token(
    auth_factory: Callable[..., Awaitable[Auth]], client_factory: ClientFactory
) -> None:
    site_auth, api_auth = await auth_factory(), await auth_factory()
    async with serve(api_app(api_auth)) as api_url:
        client = client_factory(page_app(site_auth, base_url=api_url))
        me = await sign_up(client)
        answer = (await client.get("/page")).json()
    assert answer["status"] == 200
    assert answer["api"]["userId"] == me["userId"]
    assert answer["api"]["source"] == "bearer"


# -- install / context / render -----------------------------------------------------------------


def signed_in_scope() -> dict[str, Any]:
    return {"type": "http", "auth": AuthState(user_id="u1", session_id="s1", token="t")}


def test_sync_user_without_preloading_explains_the_fixes() -> None:
    env = ssr.install(jinja2.Environment(autoescape=True))
    with pytest.raises(RuntimeError, match=r"load_user=True.*enable_async=True"):
        env.from_string("{{ auth.user().email }}").render(request=signed_in_scope())


def test_sync_user_with_an_unawaited_context_hints_at_the_missing_await() -> None:
    env = ssr.install(jinja2.Environment(autoescape=True))
    variables = ssr.context(signed_in_scope(), load_user=True)  # not awaited
    with pytest.raises(RuntimeError, match="forget `await`"):
        env.from_string("{{ auth.user().email }}").render(variables)


def test_signed_out_user_is_none_in_sync_templates_without_loading() -> None:
    env = ssr.install(jinja2.Environment(autoescape=True))
    out = env.from_string("{{ auth.user() is none }}").render(request={"auth": AuthState()})
    assert out == "True"


def test_auth_without_a_request_is_undefined_with_a_hint() -> None:
    env = ssr.install(jinja2.Environment(autoescape=True))
    with pytest.raises(jinja2.UndefinedError, match=r"ssr\.context\(request\)"):
        env.from_string("{{ auth.is_authenticated }}").render()
    assert env.from_string("{{ auth is defined }}").render() == "False"


def test_template_variables_named_auth_win_over_the_view() -> None:
    env = ssr.install(jinja2.Environment(autoescape=True))
    out = env.from_string("{{ auth }}").render(request=signed_in_scope(), auth="mine")
    assert out == "mine"


def test_context_builds_request_and_one_view_per_request() -> None:
    scope = signed_in_scope()
    first, second = ssr.context(scope), ssr.context(scope)
    assert first["request"] is scope
    assert isinstance(first["auth"], ssr.AuthView)
    assert first["auth"] is second["auth"]
    assert first["auth"].user_id == "u1"
    assert first["auth"].claims == {}


def test_install_is_idempotent_and_keeps_a_custom_context_class() -> None:
    class Custom(Context):
        pass

    env = jinja2.Environment(autoescape=True)
    env.context_class = Custom
    ssr.install(env)
    installed = env.context_class
    assert issubclass(installed, Custom)
    ssr.install(env)
    assert env.context_class is installed
    assert env.from_string("{{ auth.user_id }}").render(request=signed_in_scope()) == "u1"


def test_install_accepts_jinja2_templates() -> None:
    templates = Jinja2Templates(env=jinja2.Environment(autoescape=True))
    assert ssr.install(templates) is templates.env
    assert {"auth_bootstrap", "auth_token", "is_authenticated", "route_matcher"} <= set(
        templates.env.globals
    )
    assert "url_for" in templates.env.globals


async def test_render_runs_context_processors_and_awaits_async_environments() -> None:
    loader = jinja2.DictLoader({"t.html": "{{ greeting }} {{ auth.user_id }} {{ extra }}"})

    def processor(request: Any) -> dict[str, Any]:
        return {"extra": "processed"}

    for enable_async in (False, True):
        env = jinja2.Environment(loader=loader, autoescape=True, enable_async=enable_async)
        templates = Jinja2Templates(env=env, context_processors=[processor])
        ssr.install(templates)
        out = await ssr.render(templates, signed_in_scope(), "t.html", {"greeting": "hi"})
        assert out == "hi u1 processed"
