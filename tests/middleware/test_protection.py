"""Route protection: HTML navigations are redirected to the sign-in page with ``?next=``, other
requests get an RFC 6750 401, the ``on_request`` hook can answer instead of the app, and
WebSockets to protected paths are refused when anonymous."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from authbridge import Auth, AuthMiddleware, AuthState
from authbridge._asgi import ASGIApp, Receive, Scope, Send, json_response, redirect_response
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory
from tests.toolkit.servers import serve

from .conftest import JWT, cookie_header, jar_cookies, starlette_app

HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
API = {"accept": "application/json"}


def protected_app(auth: Auth, **kwargs: object) -> AuthMiddleware:
    return AuthMiddleware(
        starlette_app(),
        auth,
        protect=[
            "/private",
            "/private/**",
            re.compile(r"/admin/\d+"),
            lambda path: path.startswith("/secret"),
        ],
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def client(auth: Auth, client_factory: ClientFactory) -> httpx.AsyncClient:
    return client_factory(protected_app(auth))


@pytest.mark.parametrize(
    ("path", "next_"),
    [
        ("/private", "/private"),
        ("/private/notes/7?sort=new&page=2", "/private/notes/7?sort=new&page=2"),
        ("/private/caf%C3%A9", "/private/café"),
        ("/admin/42", "/admin/42"),
        ("/secret-page", "/secret-page"),
    ],
)
async def test_anonymous_html_navigation_is_redirected_to_sign_in_with_next(
    client: httpx.AsyncClient, path: str, next_: str
) -> None:
    response = await client.get(path, headers=HTML)
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/signin" and not location.netloc
    assert parse_qs(location.query) == {"next": [next_]}
    assert response.headers["cache-control"] == "private"
    assert "Cookie" in response.headers["vary"]


async def test_the_redirect_encodes_next_completely(client: httpx.AsyncClient) -> None:
    response = await client.get("/private/x?a=1&b=2", headers=HTML)
    assert response.headers["location"] == "/signin?next=%2Fprivate%2Fx%3Fa%3D1%26b%3D2"


async def test_the_sign_in_path_is_configurable(
    auth_factory: AuthFactory, client_factory: ClientFactory
) -> None:
    auth = await auth_factory(sign_in_path="/login")
    response = await client_factory(protected_app(auth)).get("/private", headers=HTML)
    assert response.headers["location"] == "/login?next=%2Fprivate"


@pytest.mark.parametrize(
    ("method", "headers"),
    [("GET", API), ("GET", {}), ("POST", HTML), ("DELETE", API)],
)
async def test_anonymous_api_requests_get_401_with_a_bearer_challenge(
    client: httpx.AsyncClient, method: str, headers: dict[str, str]
) -> None:
    response = await client.request(method, "/private", headers=headers)
    assert (response.status_code, response.json()) == (401, {"error": "Unauthenticated"})
    assert response.headers["www-authenticate"] == 'Bearer realm="authbridge"'


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
async def test_a_rejected_bearer_gets_invalid_token(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/private", headers={**API, "authorization": f"Bearer {token}"})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="authbridge", error="invalid_token"')


async def test_an_expired_bearer_gets_invalid_token_with_a_description(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    app = protected_app(auth)
    browser = client_factory(app)
    await sign_up(browser)
    token = jar_cookies(browser)[JWT]
    clock.advance(3600)
    response = await client_factory(app).get(
        "/private", headers={"authorization": f"Bearer {token}"}
    )
    assert response.headers["www-authenticate"] == (
        'Bearer realm="authbridge", error="invalid_token", error_description="expired"'
    )


async def test_signed_in_users_reach_protected_routes(client: httpx.AsyncClient) -> None:
    body = await sign_up(client)
    for path in ("/private", "/private/a/b", "/admin/7", "/secret"):
        response = await client.get(path, headers=HTML)
        assert response.status_code == 200, path
        assert response.json()["userId"] == body["userId"]


async def test_unprotected_routes_are_served_to_everyone(client: httpx.AsyncClient) -> None:
    for path in ("/public", "/admin/x", "/privateer"):
        response = await client.get(path, headers=HTML)
        assert response.status_code == 200, path
        assert response.json()["userId"] is None, path


async def test_protected_route_with_expired_token_is_refreshed_not_redirected(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await sign_up(client)
    clock.advance(3600)
    response = await client.get("/private", headers=HTML)
    assert response.status_code == 200
    assert response.json()["refreshed"] is True


async def test_a_foreign_post_to_a_protected_route_is_refused(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    response = await client.post("/private", headers={"origin": "https://evil.example"})
    assert response.status_code == 401
    # The request was stripped of cookie auth, not given a bad token: no invalid_token.
    assert response.headers["www-authenticate"] == 'Bearer realm="authbridge"'


async def test_a_single_pattern_and_a_matcher_are_accepted(
    auth: Auth, client_factory: ClientFactory
) -> None:
    from authbridge.routing import route_matcher

    for protect in ("/private", route_matcher(["/private"])):
        app = AuthMiddleware(starlette_app(), auth, protect=protect)
        assert (await client_factory(app).get("/private")).status_code == 401


# -- on_request ------------------------------------------------------------------------------------


def redirect_to(location: str) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await redirect_response(send, location)

    return app


def deny(status: int) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await json_response(send, status, {"error": "Forbidden"})

    return app


async def admin_rules(scope: Scope, state: AuthState) -> ASGIApp | None:
    if scope["path"] == "/old":
        return redirect_to("/public")
    if scope["path"].startswith("/whoami") and scope.get("method") == "DELETE":
        return deny(403) if not state.is_authenticated else None
    return None


async def test_on_request_can_redirect(auth: Auth, client_factory: ClientFactory) -> None:
    client = client_factory(protected_app(auth, on_request=admin_rules))
    response = await client.get("/old")
    assert (response.status_code, response.headers["location"]) == (303, "/public")


async def test_on_request_can_deny_and_sees_the_auth_state(
    auth: Auth, client_factory: ClientFactory
) -> None:
    client = client_factory(protected_app(auth, on_request=admin_rules))
    denied = await client.delete("/whoami")
    assert denied.status_code == 403
    assert "private" in denied.headers["cache-control"]
    await sign_up(client)
    allowed = await client.delete("/whoami")
    assert allowed.status_code == 200


async def test_on_request_replacement_gets_refreshed_cookies(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    client = client_factory(protected_app(auth, on_request=admin_rules))
    await sign_up(client)
    clock.advance(3600)
    response = await client.get("/old")
    assert response.status_code == 303
    assert "set-cookie" in response.headers


async def test_on_request_does_not_run_for_denied_protected_routes(
    auth: Auth, client_factory: ClientFactory
) -> None:
    calls: list[str] = []

    async def hook(scope: Scope, state: AuthState) -> ASGIApp | None:
        calls.append(scope["path"])
        return None

    client = client_factory(protected_app(auth, on_request=hook))
    await client.get("/private")
    await client.get("/public")
    assert calls == ["/public"]


# -- WebSocket -------------------------------------------------------------------------------------


async def test_anonymous_websocket_to_a_protected_path_is_refused(
    auth: Auth, client_factory: ClientFactory
) -> None:
    app = protected_app(auth)
    browser = client_factory(app)
    body = await sign_up(browser)
    token = jar_cookies(browser)[JWT]
    async with serve(app, lifespan="auto") as base:
        ws_base = base.replace("http://", "ws://")
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(f"{ws_base}/private/ws", open_timeout=5):
                pass
        assert refused.value.response.status_code == 403
        async with websockets.connect(
            f"{ws_base}/private/ws",
            additional_headers={"authorization": f"Bearer {token}"},
            open_timeout=5,
        ) as ws:
            import json

            seen = json.loads(await ws.recv())
        assert seen["userId"] == body["userId"]
        # Loopback http: the browser would send plain cookie names.
        async with websockets.connect(
            f"{ws_base}/private/ws",
            additional_headers=cookie_header(**{"authbridge.jwt": token}),
            open_timeout=5,
        ) as ws:
            seen = json.loads(await ws.recv())
        assert seen["userId"] == body["userId"]


async def test_protecting_everything_never_protects_the_sign_in_page(
    auth: Auth, client_factory: ClientFactory
) -> None:
    client = client_factory(AuthMiddleware(starlette_app(), auth, protect=["/**"]))
    page = await client.get("/signin?next=%2Fnotes", headers=HTML)
    assert page.status_code == 200
    other = await client.get("/notes", headers=HTML)
    assert other.headers["location"] == "/signin?next=%2Fnotes"
    # The auth endpoints and discovery documents stay reachable.
    assert (await client.get("/.well-known/jwks.json")).status_code == 200
    await sign_up(client)
    assert (await client.get("/notes", headers=HTML)).status_code == 200


async def test_a_cross_site_websocket_does_not_ride_the_cookies(
    auth: Auth, client_factory: ClientFactory
) -> None:
    import json

    app = protected_app(auth)
    async with serve(app, lifespan="auto") as base:
        http = client_factory(app, base_url=base, transport=httpx.AsyncHTTPTransport())
        body = await sign_up(http)
        token = jar_cookies(http)["authbridge.jwt"]
        ws_url = base.replace("http://", "ws://") + "/ws"
        cookies = cookie_header(**{"authbridge.jwt": token})
        for origin, expected in ((base, body["userId"]), ("http://evil.example", None)):
            async with websockets.connect(
                ws_url,
                origin=Origin(origin),
                additional_headers=cookies,
                open_timeout=5,
            ) as ws:
                seen = json.loads(await ws.recv())
            assert seen["userId"] == expected, origin
        assert seen["error"] == "cross_site"
        # A bearer token is not ambient authority: any origin may use it.
        async with websockets.connect(
            ws_url,
            origin=Origin("http://evil.example"),
            additional_headers={"authorization": f"Bearer {token}"},
            open_timeout=5,
        ) as ws:
            assert json.loads(await ws.recv())["userId"] == body["userId"]
        # A protected WebSocket refuses the hijacking page outright.
        with pytest.raises(InvalidStatus):
            async with websockets.connect(
                ws_url.replace("/ws", "/private/ws"),
                origin=Origin("http://evil.example"),
                additional_headers=cookies,
                open_timeout=5,
            ):
                pass
