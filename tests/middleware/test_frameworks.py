"""One behaviour suite, run against Starlette, FastAPI, Litestar, Quart, Django and a raw ASGI
app: the middleware must not care which framework it wraps."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from authbridge import Auth, AuthMiddleware
from authbridge._asgi import AnyASGIApp
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.servers import serve

from .conftest import JWT, PLAIN_DEVICE, PLAIN_JWT, REFRESH, cookie_header, jar_cookies, set_cookies
from .framework_apps import FRAMEWORKS, NATIVE, WEBSOCKET_FRAMEWORKS, build

HTML = {"accept": "text/html"}


@pytest.fixture(params=[*sorted(FRAMEWORKS), *sorted(NATIVE)])
def framework(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def app(framework: str, auth: Auth) -> AnyASGIApp:
    return build(framework, auth, ["/private"])


@pytest.fixture
def client(app: AnyASGIApp, client_factory: ClientFactory) -> httpx.AsyncClient:
    return client_factory(app)


async def whoami(client: httpx.AsyncClient, **kwargs: object) -> dict[str, object]:
    response = await client.get("/whoami", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_anonymous(client: httpx.AsyncClient, framework: str) -> None:
    seen = await whoami(client)
    assert (seen["userId"], seen["authenticated"], seen["error"]) == (None, False, None)
    if "frameworkUser" in seen:
        assert seen["frameworkUser"] is False


async def test_cookie(client: httpx.AsyncClient) -> None:
    body = await sign_up(client)
    seen = await whoami(client)
    assert (seen["userId"], seen["sessionId"], seen["source"]) == (
        body["userId"],
        body["sessionId"],
        "cookie",
    )
    if "frameworkUser" in seen:
        assert seen["frameworkUser"] is True


async def test_bearer(
    app: AnyASGIApp, client: httpx.AsyncClient, client_factory: ClientFactory
) -> None:
    body = await sign_up(client)
    token = (await client.post("/api/auth/token")).json()["token"]
    seen = await whoami(client_factory(app), headers={"authorization": f"Bearer {token}"})
    assert (seen["userId"], seen["source"]) == (body["userId"], "bearer")


async def test_refresh_on_expiry(client: httpx.AsyncClient, clock: FakeClock) -> None:
    body = await sign_up(client)
    clock.advance(3600)
    response = await client.get("/whoami")
    seen = response.json()
    assert (seen["userId"], seen["refreshed"]) == (body["userId"], True)
    assert set(set_cookies(response)) == {JWT, REFRESH}
    assert response.headers["cache-control"] == "private, no-store"
    assert (await whoami(client))["refreshed"] is False


async def test_sign_out(
    app: AnyASGIApp, client: httpx.AsyncClient, client_factory: ClientFactory
) -> None:
    await sign_up(client)
    token = jar_cookies(client)[JWT]
    assert (await client.post("/api/auth/signout")).status_code == 200
    assert (await whoami(client))["authenticated"] is False
    seen = await whoami(client_factory(app), headers={"authorization": f"Bearer {token}"})
    assert seen["error"] == "revoked"


SIGN_IN_REDIRECT = {
    # login_required redirects every request (HTML or not) with Django's own quoting.
    "django-native": (302, "/signin?next=/private"),
    # FastAPI dependencies and Litestar guards answer 401; HTML redirects are the middleware's
    # ``protect`` (or the app's own exception handler).
    "fastapi-native": (401, None),
    "litestar-native": (401, None),
}


async def test_protection(client: httpx.AsyncClient, framework: str) -> None:
    page = await client.get("/private", headers=HTML)
    expected = SIGN_IN_REDIRECT.get(framework, (303, "/signin?next=%2Fprivate"))
    assert (page.status_code, page.headers.get("location")) == expected
    api = await client.get("/private")
    if framework == "django-native":
        assert api.status_code == 302
    else:
        assert api.status_code == 401
        assert api.headers["www-authenticate"].startswith("Bearer")
    await sign_up(client)
    signed_in = await client.get("/private", headers=HTML)
    assert signed_in.status_code == 200
    if framework in NATIVE:
        assert signed_in.json()["frameworkUser"] is True


async def test_foreign_post_runs_anonymous(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    response = await client.post("/whoami", headers={"origin": "https://evil.example"})
    assert response.status_code == 200
    seen = response.json()
    assert (seen["userId"], seen["error"]) == (None, "cross_site")
    same = await client.post("/whoami", headers={"origin": "https://testserver"})
    assert same.json()["authenticated"] is True


async def test_private_caching(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    response = await client.get("/whoami")
    assert "private" in response.headers["cache-control"]
    assert "Cookie" in response.headers["vary"]


# -- over a real server ----------------------------------------------------------------------------


async def test_websocket_handshake_with_cookie_and_bearer(
    framework: str, app: AnyASGIApp, client_factory: ClientFactory
) -> None:
    if framework not in WEBSOCKET_FRAMEWORKS:
        pytest.skip(f"{framework} serves no WebSockets over plain ASGI")
    async with serve(app, lifespan="auto") as base:
        http = client_factory(app, base_url=base, transport=httpx.AsyncHTTPTransport())
        body = await sign_up(http)
        token = jar_cookies(http)[PLAIN_JWT]
        ws_url = base.replace("http://", "ws://") + "/ws"
        for headers, source in (
            (cookie_header(**{PLAIN_JWT: token}), "cookie"),
            ({"authorization": f"Bearer {token}"}, "bearer"),
            ({}, None),
        ):
            async with websockets.connect(
                ws_url, additional_headers=headers, open_timeout=5, close_timeout=5
            ) as ws:
                seen = json.loads(await ws.recv())
            assert seen["source"] == source
            assert seen["userId"] == (body["userId"] if source else None)


async def test_over_a_real_server_lifespan_opens_and_closes_the_engine(
    framework: str, unopened_auth_factory: Callable[..., Auth], client_factory: ClientFactory
) -> None:
    """Every framework, Django's lifespan-refusing handler included: the middleware answers
    lifespan itself when the app does not."""
    auth = unopened_auth_factory()
    app = build(framework, auth, ["/private"])
    async with serve(app, lifespan="auto") as base:
        assert auth.is_open
        http = client_factory(app, base_url=base, transport=httpx.AsyncHTTPTransport())
        assert (await whoami(http))["authenticated"] is False
        body = await sign_up(http)
        assert set(jar_cookies(http)) == {PLAIN_JWT, "authbridge.refresh", PLAIN_DEVICE}
        assert (await whoami(http))["userId"] == body["userId"]
        assert (await http.get("/private")).status_code == 200
    assert not auth.is_open


async def test_websocket_protection_over_a_real_server(framework: str, auth: Auth) -> None:
    if framework not in WEBSOCKET_FRAMEWORKS:
        pytest.skip(f"{framework} serves no WebSockets over plain ASGI")
    if framework in NATIVE:
        pytest.skip("native apps protect routes their own way (the HTTP tests cover it)")
    app = AuthMiddleware(FRAMEWORKS[framework](), auth, protect=["/ws"])
    async with serve(app, lifespan="auto") as base:
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(base.replace("http://", "ws://") + "/ws", open_timeout=5):
                pass
        assert refused.value.response.status_code == 403


async def test_websocket_handshake_refreshes_an_expired_token(
    framework: str, app: AnyASGIApp, client_factory: ClientFactory, clock: FakeClock
) -> None:
    if framework not in WEBSOCKET_FRAMEWORKS:
        pytest.skip(f"{framework} serves no WebSockets over plain ASGI")
    async with serve(app, lifespan="auto") as base:
        http = client_factory(app, base_url=base, transport=httpx.AsyncHTTPTransport())
        body = await sign_up(http)
        cookies = jar_cookies(http)
        clock.advance(3600)
        async with websockets.connect(
            base.replace("http://", "ws://") + "/ws",
            additional_headers=cookie_header(**cookies),
            open_timeout=5,
        ) as ws:
            seen = json.loads(await ws.recv())
            assert ws.response is not None
            set_cookie = ws.response.headers.get_all("Set-Cookie")
        assert (seen["userId"], seen["refreshed"]) == (body["userId"], True)
        assert {h.split("=", 1)[0] for h in set_cookie} == {PLAIN_JWT, "authbridge.refresh"}
