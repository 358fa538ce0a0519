"""Auth cookies: names and attributes per origin, clearing, cross-site stripping, and session
replacement on a second sign-in."""

from __future__ import annotations

from datetime import timedelta

import pytest

from authbridge import Auth, AuthMiddleware
from tests.toolkit.clients import ClientFactory, sign_in, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory

from .conftest import (
    BASE,
    DEVICE,
    JWT,
    PLAIN_JWT,
    PLAIN_REFRESH,
    REFRESH,
    cookie_header,
    cookie_value,
    jar_cookies,
    set_cookies,
    starlette_app,
)

THIRTY_DAYS = 30 * 24 * 3600


def attributes(header: str) -> set[str]:
    return {part.strip() for part in header.split(";")[1:]}


@pytest.mark.parametrize("base_url", [BASE, "http://app.example", "https://app.example:8443"])
async def test_secure_origins_get_host_prefixed_secure_cookies(
    auth: Auth, client_factory: ClientFactory, base_url: str
) -> None:
    # Plain http on a public host is a TLS-terminating proxy: the browser is on https.
    client = client_factory(AuthMiddleware(starlette_app(), auth), base_url=base_url)
    response = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {
                "flow": "signUp",
                "email": "ada@example.com",
                "password": "correct horse battery staple",
            },
        },
    )
    out = set_cookies(response)
    assert set(out) == {JWT, REFRESH, DEVICE}
    assert attributes(out.pop(DEVICE)) == {
        "Path=/",
        "SameSite=Lax",
        "Max-Age=34560000",
        "HttpOnly",
        "Secure",
    }
    for header in out.values():
        assert attributes(header) == {
            "Path=/",
            "SameSite=Lax",
            f"Max-Age={THIRTY_DAYS}",
            "HttpOnly",
            "Secure",
        }
        assert "domain" not in header.lower()


@pytest.mark.parametrize(
    "base_url",
    ["http://localhost", "http://localhost:8000", "http://127.0.0.1:5000", "http://[::1]:8000"],
)
async def test_plain_http_loopback_gets_unprefixed_cookies_without_secure(
    auth: Auth, client_factory: ClientFactory, base_url: str
) -> None:
    client = client_factory(AuthMiddleware(starlette_app(), auth), base_url=base_url)
    await sign_up(client)
    response = await client.post("/api/auth/refresh")
    out = set_cookies(response)
    assert set(out) == {PLAIN_JWT, PLAIN_REFRESH}
    for header in out.values():
        assert attributes(header) == {
            "Path=/",
            "SameSite=Lax",
            f"Max-Age={THIRTY_DAYS}",
            "HttpOnly",
        }
    seen = (await client.get("/whoami")).json()
    assert seen["authenticated"] is True


async def test_max_age_follows_the_remaining_session_lifetime(
    auth: Auth, client_factory: ClientFactory, clock: FakeClock
) -> None:
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    await sign_up(client)
    clock.advance(timedelta(days=10))
    response = await client.get("/whoami")
    assert f"Max-Age={20 * 24 * 3600}" in set_cookies(response)[JWT]


async def test_browser_session_cookies_have_no_max_age(
    auth_factory: AuthFactory, client_factory: ClientFactory
) -> None:
    auth = await auth_factory(browser_session_cookies=True)
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    await sign_up(client)
    response = await client.post("/api/auth/refresh")
    assert all("Max-Age" not in h for h in set_cookies(response).values())


async def test_configured_cookie_max_age(
    auth_factory: AuthFactory, client_factory: ClientFactory
) -> None:
    auth = await auth_factory(cookie_max_age=timedelta(hours=2))
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    await sign_up(client)
    response = await client.post("/api/auth/refresh")
    assert all("Max-Age=7200" in h for h in set_cookies(response).values())


async def test_sign_out_clears_both_cookies_with_matching_attributes(
    auth: Auth, client_factory: ClientFactory
) -> None:
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    await sign_up(client)
    response = await client.post("/api/auth/signout")
    for name in (JWT, REFRESH):
        header = set_cookies(response)[name]
        assert header.startswith(f"{name}=;")
        assert attributes(header) == {"Path=/", "SameSite=Lax", "Max-Age=0", "HttpOnly", "Secure"}
    assert set(jar_cookies(client)) == {DEVICE}  # a known device, not a session


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_a_foreign_state_changing_request_runs_anonymous(
    auth: Auth,
    client_factory: ClientFactory,
    clock: FakeClock,
    headers: dict[str, str],
    method: str,
) -> None:
    app = AuthMiddleware(starlette_app(), auth)
    client = client_factory(app)
    await sign_up(client)
    seen = await client.request(method, "/whoami", headers=headers)
    assert (seen.json()["userId"], seen.json()["error"]) == (None, "cross_site")
    # Even with an expired token, nothing is rotated for a foreign request.
    clock.advance(3600)
    again = await client.request(method, "/whoami", headers=headers)
    assert "set-cookie" not in again.headers


async def test_a_foreign_bearer_request_is_unaffected(
    auth: Auth, client_factory: ClientFactory
) -> None:
    app = AuthMiddleware(starlette_app(), auth)
    browser = client_factory(app)
    body = await sign_up(browser)
    token = (await browser.post("/api/auth/token")).json()["token"]
    seen = (
        await client_factory(app).post(
            "/whoami",
            headers={"origin": "https://other.example", "authorization": f"Bearer {token}"},
        )
    ).json()
    assert (seen["userId"], seen["source"]) == (body["userId"], "bearer")


async def test_foreign_safe_requests_keep_cookie_auth(
    auth: Auth, client_factory: ClientFactory
) -> None:
    # A link followed from another site is a GET: the page may show the signed-in user.
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    await sign_up(client)
    seen = (
        await client.get(
            "/whoami", headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}
        )
    ).json()
    assert seen["authenticated"] is True


async def test_allowed_origins_keep_cookie_auth_on_posts(
    auth_factory: AuthFactory, client_factory: ClientFactory
) -> None:
    auth = await auth_factory(allowed_origins=("https://admin.example",))
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    await sign_up(client)
    seen = (await client.post("/whoami", headers={"origin": "https://admin.example"})).json()
    assert seen["authenticated"] is True


async def test_sign_in_by_a_signed_in_browser_replaces_its_session(
    auth: Auth, client_factory: ClientFactory
) -> None:
    app = AuthMiddleware(starlette_app(), auth)
    client = client_factory(app)
    first = await sign_up(client)
    old = jar_cookies(client)
    second = (await sign_in(client)).json()
    assert second["sessionId"] != first["sessionId"]
    assert await auth.get_session(first["sessionId"]) is None
    assert [s.session_id for s in await auth.list_sessions(first["userId"])] == [
        second["sessionId"]
    ]
    stale = client_factory(app)
    seen = (await stale.get("/whoami", headers=cookie_header(**{JWT: old[JWT]}))).json()
    assert (seen["userId"], seen["error"]) == (None, "revoked")
    refreshed = await stale.post(
        "/api/auth/refresh", headers=cookie_header(**{REFRESH: old[REFRESH]})
    )
    assert refreshed.status_code == 401
    assert (await client.get("/whoami")).json()["sessionId"] == second["sessionId"]


async def test_sign_in_as_someone_else_replaces_the_session_too(
    auth: Auth, client_factory: ClientFactory
) -> None:
    app = AuthMiddleware(starlette_app(), auth)
    client = client_factory(app)
    await sign_up(client_factory(app), "bob@example.com")
    ada = await sign_up(client)
    bob = (await sign_in(client, "bob@example.com")).json()
    assert await auth.get_session(ada["sessionId"]) is None
    assert (await client.get("/whoami")).json()["userId"] == bob["userId"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST:8000", True),
        ("127.0.0.1:5000", True),
        ("[::1]:8000", True),
        ("[::1]", True),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("[::2]:80", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    from authbridge.cookies import is_loopback_host

    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"a=1; b=2", {"a": "1", "b": "2"}),
        (b"a=1; a=2", {"a": "1"}),
        (b' a = "quoted" ', {"a": "quoted"}),
        (b"novalue; =x; c=3", {"c": "3"}),
        (b"a=\xff", {"a": "\xff"}),
        (None, {}),
        (b"", {}),
        (b"a=" + b"x" * 20_000, {}),
    ],
)
def test_cookie_parsing_never_raises(header: bytes | None, expected: dict[str, str]) -> None:
    from authbridge.cookies import parse_cookies

    assert parse_cookies(header) == expected


def test_set_cookie_refuses_values_that_would_break_the_header() -> None:
    from authbridge.cookies import set_cookie

    for value in ("a;b", "a b", 'a"b', "a\r\nb", "a,b", "\u00e9"):
        with pytest.raises(ValueError):
            set_cookie("n", value, secure=True, max_age=1)


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:8000", "http://localhost", "http://[::1]:9000"]
)
async def test_an_https_site_always_gets_secure_cookies_whatever_the_host_header(
    auth_factory: AuthFactory, client_factory: ClientFactory, base_url: str
) -> None:
    # A TLS-terminating proxy that forwards "Host: 127.0.0.1" over plain http: the browser is on
    # https://app.example, so the cookies must still be __Host- and Secure.
    auth = await auth_factory(site_url="https://app.example")
    client = client_factory(AuthMiddleware(starlette_app(), auth), base_url=base_url)
    response = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": "ada@example.com", "password": "x" * 12},
        },
    )
    out = set_cookies(response)
    assert {JWT, REFRESH} <= set(out)
    assert all(name.startswith("__Host-") for name in out)
    assert all("Secure" in attributes(header) for header in out.values())
    jwt = cookie_value(out[JWT])
    seen = (await client.get("/whoami", headers=cookie_header(**{JWT: jwt}))).json()
    assert seen["authenticated"] is True
    plain = (await client.get("/whoami", headers=cookie_header(**{PLAIN_JWT: jwt}))).json()
    assert plain["authenticated"] is False


async def test_an_http_site_on_a_public_host_still_gets_secure_cookies(
    auth_factory: AuthFactory, client_factory: ClientFactory
) -> None:
    auth = await auth_factory(site_url="http://localhost:8000")
    client = client_factory(AuthMiddleware(starlette_app(), auth), base_url="http://app.example")
    await sign_up(client)
    assert {JWT, REFRESH} <= set(jar_cookies(client))


# -- no Origin header: Referer, then Sec-Fetch-Site ---------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"referer": "https://evil.example/page"},
        {"referer": "https://testserver.evil.example/"},
        {"referer": "http://testserver/"},  # another scheme is another origin
        {"referer": "https://evil.example/", "sec-fetch-site": "same-origin"},
        {"referer": "not a url"},
    ],
)
async def test_a_state_changing_request_from_a_foreign_referer_runs_anonymous(
    auth: Auth, client_factory: ClientFactory, headers: dict[str, str]
) -> None:
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    await sign_up(client)
    seen = (await client.post("/whoami", headers=headers)).json()
    assert (seen["userId"], seen["error"]) == (None, "cross_site")


@pytest.mark.parametrize(
    ("referer", "allowed"),
    [
        ("https://testserver/notes?x=1", ()),
        ("https://testserver", ()),
        ("https://admin.example/tools", ("https://admin.example",)),
    ],
)
async def test_a_state_changing_request_from_an_own_or_allowed_referer_keeps_cookie_auth(
    auth_factory: AuthFactory,
    client_factory: ClientFactory,
    referer: str,
    allowed: tuple[str, ...],
) -> None:
    auth = await auth_factory(allowed_origins=allowed)
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    await sign_up(client)
    # The Referer decides even when Sec-Fetch-Site would not (an old proxy rewrote it).
    headers = {"referer": referer, "sec-fetch-site": "same-site"}
    seen = (await client.post("/whoami", headers=headers)).json()
    assert seen["authenticated"] is True


async def test_the_auth_endpoints_refuse_a_post_from_a_foreign_referer(
    auth: Auth, client_factory: ClientFactory
) -> None:
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    await sign_up(client)
    response = await client.post("/api/auth/signout", headers={"referer": "https://evil.example/"})
    assert (response.status_code, response.json()) == (403, {"error": "Forbidden"})
    assert (await client.get("/whoami")).json()["authenticated"] is True
