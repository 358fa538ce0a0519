"""The auth endpoints speak exactly the DESIGN §8 wire formats, and refuse what they must."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authbridge import Auth, AuthMiddleware
from authbridge.endpoints import client_script_url
from tests.toolkit.clients import ClientFactory, sign_in, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import PASSWORD, AuthFactory

from .conftest import (
    DEVICE,
    FORM_CT,
    JSON_CT,
    JWT,
    REFRESH,
    jar_cookies,
    set_cookies,
    starlette_app,
)

DISCOVERY_CACHE = "public, max-age=15, stale-while-revalidate=15, stale-if-error=86400"


@pytest.fixture
def app(auth: Auth) -> AuthMiddleware:
    return AuthMiddleware(starlette_app(), auth)


@pytest.fixture
def client(app: AuthMiddleware, client_factory: ClientFactory) -> httpx.AsyncClient:
    return client_factory(app)


# -- sign-in / sign-up -----------------------------------------------------------------------------


async def test_json_sign_up_answers_the_documented_shape_and_sets_cookies(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": "ada@example.com", "password": PASSWORD},
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"signedIn", "userId", "sessionId"}
    assert body["signedIn"] is True
    assert set(set_cookies(response)) == {JWT, REFRESH, DEVICE}
    assert response.headers["cache-control"] == "private, no-store"


async def test_the_refresh_token_never_appears_in_a_response_body(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client)
    for path in ("/api/auth/refresh", "/api/auth/token"):
        secret = jar_cookies(client)[REFRESH].split(".")[1]
        response = await client.post(path)
        assert secret not in response.text
    sessions = await client.get("/api/auth/sessions")
    assert jar_cookies(client)[REFRESH].split(".")[1] not in sessions.text


async def test_json_sign_in_with_the_right_password(client: httpx.AsyncClient) -> None:
    user_id = (await sign_up(client))["userId"]
    client.cookies.clear()
    response = await sign_in(client)
    assert response.status_code == 200
    assert response.json()["userId"] == user_id


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        (
            {"flow": "signIn", "email": "ada@example.com", "password": "wrong password"},
            401,
            "InvalidCredentials",
        ),
        (
            {"flow": "signIn", "email": "nobody@example.com", "password": PASSWORD},
            401,
            "InvalidCredentials",
        ),
        (
            {"flow": "signUp", "email": "ada@example.com", "password": PASSWORD},
            409,
            "AccountExists",
        ),
        (
            {"flow": "signUp", "email": "new@example.com", "password": "short"},
            400,
            "InvalidPassword",
        ),
        ({"flow": "signUp", "email": "not-an-email", "password": PASSWORD}, 400, "InvalidEmail"),
        (
            {"flow": "teleport", "email": "ada@example.com", "password": PASSWORD},
            400,
            "InvalidParams",
        ),
        (
            {"flow": "signIn", "email": ["ada@example.com"], "password": {"x": 1}},
            400,
            "InvalidParams",
        ),
    ],
)
async def test_json_sign_in_errors_are_stable_codes(
    app: AuthMiddleware,
    client_factory: ClientFactory,
    params: dict[str, object],
    status: int,
    code: str,
) -> None:
    await sign_up(client_factory(app))
    client = client_factory(app)
    response = await client.post(
        "/api/auth/signin", json={"provider": "password", "params": params}
    )
    assert (response.status_code, response.json()["error"]) == (status, code)
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"params": {}}, "provider is required (a string)"),
        ({"provider": "password"}, "params is required (an object)"),
        ({"provider": "password", "params": "flow=signIn"}, "params is required (an object)"),
        ({"provider": 7, "params": {}}, "provider is required (a string)"),
        ({"provider": "carrier-pigeon", "params": {}}, "unknown provider; configured: password"),
        (
            {"provider": "password", "params": {"flow": "signIn", "password": PASSWORD}},
            "params.email is required",
        ),
        (
            {"provider": "password", "params": {"flow": "signIn", "email": "a@example.com"}},
            "params.password is required",
        ),
        (
            {"provider": "password", "params": {"email": "a@example.com", "password": PASSWORD}},
            "params.flow must be one of signIn, signUp, reset, reset-verification, "
            "email-verification",
        ),
        (
            {"provider": "password", "params": {"flow": "signIn", "email": 5, "password": "x"}},
            "params.email must be a string",
        ),
    ],
)
async def test_json_sign_in_with_malformed_params_is_400_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, object], detail: str
) -> None:
    response = await client.post("/api/auth/signin", json=body)
    assert (response.status_code, response.json()) == (
        400,
        {"error": "InvalidParams", "detail": detail},
    )


async def test_malformed_sign_in_details_never_echo_the_submitted_values(
    client: httpx.AsyncClient,
) -> None:
    secret = "hunter2-secret-value"
    for params in (
        {"flow": "signIn", "email": secret},
        {"flow": "signIn", "password": secret},
        {"flow": secret, "email": "a@example.com", "password": secret},
        {"flow": "signIn", "email": "a@example.com", "password": [secret]},
    ):
        response = await client.post(
            "/api/auth/signin", json={"provider": "password", "params": params}
        )
        assert response.status_code == 400
        assert secret not in response.text
    unknown = await client.post("/api/auth/signin", json={"provider": secret, "params": {}})
    assert secret not in unknown.text


async def test_too_many_attempts_is_429_with_retry_after(
    auth_factory: AuthFactory, client_factory: ClientFactory
) -> None:
    from authbridge import RateLimitConfig

    auth = await auth_factory(rate_limit=RateLimitConfig(account_attempts=2))
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    await sign_up(client)
    client.cookies.clear()
    codes = [(await sign_in(client, password="wrong password")).status_code for _ in range(3)]
    assert codes[-1] == 429
    last = await sign_in(client, password="wrong password")
    assert last.json() == {"error": "TooManyAttempts"}
    assert int(last.headers["retry-after"]) >= 1


def form(**fields: str) -> str:
    from urllib.parse import urlencode

    return urlencode(fields)


async def test_form_sign_up_redirects_to_redirect_to_with_cookies(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/auth/signin",
        content=form(
            provider="password",
            flow="signUp",
            email="ada@example.com",
            password=PASSWORD,
            redirectTo="/notes?sort=new",
        ),
        headers={**FORM_CT, "origin": "https://testserver"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/notes?sort=new"
    assert set(set_cookies(response)) == {JWT, REFRESH, DEVICE}
    assert (await client.get("/whoami")).json()["authenticated"] is True


async def test_form_sign_in_without_redirect_to_goes_home(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    response = await client.post(
        "/api/auth/signin",
        content=form(flow="signIn", email="ada@example.com", password=PASSWORD),
        headers=FORM_CT,
    )
    assert (response.status_code, response.headers["location"]) == (303, "/")


@pytest.mark.parametrize(
    ("referer", "location"),
    [
        ("https://testserver/signin?next=%2Fnotes%3Fa%3D1", "/notes?a=1"),
        ("https://testserver/signin?next=%2F%2Fevil.com", "/"),
        ("https://testserver/signin?next=https%3A%2F%2Fevil.com", "/"),
        ("https://evil.example/signin?next=%2Fnotes", "/"),
        ("https://[broken/signin?next=%2Fnotes", "/"),
        (None, "/"),
    ],
)
async def test_form_sign_in_without_redirect_to_follows_the_pages_next(
    client: httpx.AsyncClient, referer: str | None, location: str
) -> None:
    await sign_up(client)
    # Browsers send Origin with every form post; it, not the Referer, decides the CSRF check.
    headers = {**FORM_CT, "origin": "https://testserver"}
    if referer is not None:
        headers["referer"] = referer
    response = await client.post(
        "/api/auth/signin",
        content=form(flow="signIn", email="ada@example.com", password=PASSWORD),
        headers=headers,
    )
    assert (response.status_code, response.headers["location"]) == (303, location)


async def test_an_unsafe_redirect_to_is_not_rescued_by_next(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    response = await client.post(
        "/api/auth/signin",
        content=form(
            flow="signIn", email="ada@example.com", password=PASSWORD, redirectTo="//evil.com"
        ),
        headers={**FORM_CT, "referer": "https://testserver/signin?next=%2Fnotes"},
    )
    assert response.headers["location"] == "/"


async def test_form_errors_go_back_to_the_form_with_the_code_flow_and_email_never_the_password(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/auth/signin",
        content=form(
            flow="signIn", email="ada@example.com", password="wrong password", redirectTo="/notes"
        ),
        headers={**FORM_CT, "referer": "https://testserver/login?next=%2Fnotes&error=Old"},
    )
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {
        "next": ["/notes"],
        "error": ["InvalidCredentials"],
        "flow": ["signIn"],
        "email": ["ada@example.com"],
    }
    assert "password" not in response.headers["location"]
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "referer",
    [
        None,
        "https://evil.example/login",
        "https://testserver//evil.example/x",
        "https://[broken/login",
    ],
)
async def test_form_errors_without_a_same_origin_referer_go_to_the_sign_in_page(
    client: httpx.AsyncClient, referer: str | None
) -> None:
    headers = {**FORM_CT, "origin": "https://testserver"}
    if referer is not None:
        headers["referer"] = referer
    response = await client.post(
        "/api/auth/signin",
        content=form(flow="signIn", email="ada@example.com", password="wrong password"),
        headers=headers,
    )
    assert response.headers["location"] == (
        "/signin?error=InvalidCredentials&flow=signIn&email=ada%40example.com"
    )


OPEN_REDIRECTS = [
    "//evil.com",
    "//evil.com/path",
    "https://evil.com",
    "http:evil.com",
    "/\\evil.com",
    "\\\\evil.com",
    "/\t/evil.com",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "%2F%2Fevil.com",
    "/%0d%0aSet-Cookie:x=y",
    "/\r\nSet-Cookie: x=y",
    "evil.com",
    "",
    " //evil.com",
]


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
async def test_redirect_to_accepts_only_same_site_paths(
    client: httpx.AsyncClient, target: str
) -> None:
    await sign_up(client)
    response = await client.post(
        "/api/auth/signout", content=form(redirectTo=target), headers=FORM_CT
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/") and not location.startswith("//")
    assert "\\" not in location and "\r" not in location and "\n" not in location
    resolved = httpx.URL("https://testserver/page").join(location)
    assert resolved.host == "testserver"


# -- sign-out --------------------------------------------------------------------------------------


async def test_json_sign_out_ends_the_session_and_clears_cookies(
    auth: Auth, client: httpx.AsyncClient
) -> None:
    body = await sign_up(client)
    response = await client.post("/api/auth/signout")
    assert (response.status_code, response.json()) == (200, {"signedOut": True})
    out = set_cookies(response)
    assert set(out) == {JWT, REFRESH}
    assert all("Max-Age=0" in h for h in out.values())
    assert await auth.get_session(body["sessionId"]) is None
    assert (await client.get("/whoami")).json()["authenticated"] is False


async def test_form_sign_out_redirects(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    response = await client.post(
        "/api/auth/signout", content=form(redirectTo="/bye"), headers=FORM_CT
    )
    assert (response.status_code, response.headers["location"]) == (303, "/bye")


async def test_sign_out_when_anonymous_still_answers_200(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/signout")
    assert (response.status_code, response.json()) == (200, {"signedOut": True})


async def test_bearer_sign_out_ends_the_bearer_session(
    auth: Auth, app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    browser = client_factory(app)
    body = await sign_up(browser)
    token = (await browser.post("/api/auth/token")).json()["token"]
    api = client_factory(app)
    response = await api.post("/api/auth/signout", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert await auth.get_session(body["sessionId"]) is None


# -- refresh and token -----------------------------------------------------------------------------


async def test_refresh_endpoint_rotates_and_answers_the_token(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    body = await sign_up(client)
    before = jar_cookies(client)
    response = await client.post("/api/auth/refresh")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"token", "expiresAt", "userId", "sessionId"}
    assert (data["userId"], data["sessionId"]) == (body["userId"], body["sessionId"])
    assert data["expiresAt"] == int((clock() + timedelta(hours=1)).timestamp() * 1000)
    assert jar_cookies(client)[REFRESH] != before[REFRESH]


async def test_refresh_endpoint_without_a_refresh_cookie_is_401(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/auth/refresh")
    assert (response.status_code, response.json()) == (401, {"error": "InvalidRefreshToken"})


async def test_token_endpoint_returns_the_jwt_and_its_expiry_in_milliseconds(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await sign_up(client)
    response = await client.post("/api/auth/token")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"token", "expiresAt"}
    assert data["token"] == jar_cookies(client)[JWT]
    assert data["expiresAt"] == int((clock() + timedelta(hours=1)).timestamp() * 1000)
    assert response.headers["cache-control"] == "private, no-store"


async def test_token_endpoint_when_anonymous_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/token")
    assert (response.status_code, response.json()) == (401, {"error": "Unauthenticated"})


async def test_token_endpoint_refreshes_an_expired_token_first(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await sign_up(client)
    old = jar_cookies(client)[JWT]
    clock.advance(3600)
    response = await client.post("/api/auth/token")
    assert response.status_code == 200
    assert response.json()["token"] != old
    assert response.json()["token"] == jar_cookies(client)[JWT]


# -- sessions --------------------------------------------------------------------------------------


async def test_sessions_lists_my_sessions_and_marks_the_current_one(
    app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    laptop = client_factory(app, headers={"user-agent": "laptop"})
    phone = client_factory(app, headers={"user-agent": "phone"})
    stranger = client_factory(app)
    first = await sign_up(laptop)
    second = (await sign_in(phone)).json()
    await sign_up(stranger, "eve@example.com")
    response = await laptop.get("/api/auth/sessions")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"
    sessions = response.json()["sessions"]
    assert {s["sessionId"] for s in sessions} == {first["sessionId"], second["sessionId"]}
    for s in sessions:
        assert set(s) == {"sessionId", "createdAt", "lastActiveAt", "userAgent", "current"}
        assert s["current"] is (s["sessionId"] == first["sessionId"])
    assert {s["userAgent"] for s in sessions} == {"laptop", "phone"}


async def test_sessions_when_anonymous_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/auth/sessions")
    assert (response.status_code, response.json()) == (401, {"error": "Unauthenticated"})


async def test_revoking_one_of_my_sessions_signs_that_device_out(
    auth: Auth, app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    laptop, phone = client_factory(app), client_factory(app)
    await sign_up(laptop)
    phone_session = (await sign_in(phone)).json()["sessionId"]
    response = await laptop.post("/api/auth/sessions/revoke", json={"sessionId": phone_session})
    assert (response.status_code, response.json()) == (200, {"revoked": True})
    assert (await phone.get("/whoami")).json()["authenticated"] is False
    assert (await laptop.get("/whoami")).json()["authenticated"] is True
    assert await auth.get_session(phone_session) is None


async def test_revoking_someone_elses_session_is_404_and_changes_nothing(
    auth: Auth, app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    ada, eve = client_factory(app), client_factory(app)
    ada_session = (await sign_up(ada))["sessionId"]
    await sign_up(eve, "eve@example.com")
    response = await eve.post("/api/auth/sessions/revoke", json={"sessionId": ada_session})
    assert (response.status_code, response.json()) == (404, {"error": "SessionNotFound"})
    assert await auth.get_session(ada_session) is not None
    assert (await ada.get("/whoami")).json()["authenticated"] is True


async def test_revoking_others_keeps_only_the_current_session(
    app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    laptop, phone, tablet = client_factory(app), client_factory(app), client_factory(app)
    await sign_up(laptop)
    await sign_in(phone)
    await sign_in(tablet)
    response = await laptop.post("/api/auth/sessions/revoke", json={"others": True})
    assert response.status_code == 200
    assert (await phone.get("/whoami")).json()["authenticated"] is False
    assert (await tablet.get("/whoami")).json()["authenticated"] is False
    assert (await laptop.get("/whoami")).json()["authenticated"] is True
    assert len((await laptop.get("/api/auth/sessions")).json()["sessions"]) == 1


@pytest.mark.parametrize("body", [{}, {"sessionId": 5}, {"sessionId": ""}, {"others": "yes"}])
async def test_revoke_with_malformed_body_is_400(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    await sign_up(client)
    response = await client.post("/api/auth/sessions/revoke", json=body)
    assert (response.status_code, response.json()) == (400, {"error": "InvalidParams"})


async def test_revoke_when_anonymous_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/sessions/revoke", json={"others": True})
    assert response.status_code == 401


# -- discovery and the client script ---------------------------------------------------------------


async def test_jwks_serves_public_keys_only_with_short_public_caching(
    auth: Auth, client: httpx.AsyncClient
) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == DISCOVERY_CACHE
    assert response.headers["content-type"].startswith("application/json")
    keys = response.json()["keys"]
    assert [k["kid"] for k in keys] == [auth.keys.signing_key.kid]
    assert all("d" not in k for k in keys)
    assert "set-cookie" not in response.headers and "vary" not in response.headers


async def test_jwks_keys_verify_issued_tokens(client: httpx.AsyncClient) -> None:
    import jwt as pyjwt

    await sign_up(client)
    token = (await client.post("/api/auth/token")).json()["token"]
    jwk = (await client.get("/.well-known/jwks.json")).json()["keys"][0]
    key = pyjwt.PyJWK(jwk)
    claims = pyjwt.decode(
        token,
        key.key,
        algorithms=[jwk["alg"]],
        audience="authbridge",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == "http://localhost:8000"


async def test_openid_configuration(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.headers["cache-control"] == DISCOVERY_CACHE
    document = response.json()
    assert document["issuer"] == "http://localhost:8000"
    assert document["jwks_uri"] == "http://localhost:8000/.well-known/jwks.json"
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]


async def test_discovery_documents_ignore_cookies(
    app: AuthMiddleware, client_factory: ClientFactory, clock: FakeClock
) -> None:
    client = client_factory(app)
    await sign_up(client)
    clock.advance(3600)  # a refresh would set cookies; discovery must stay publicly cacheable
    response = await client.get("/.well-known/jwks.json")
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == DISCOVERY_CACHE


async def test_client_script_is_served_with_long_caching_when_versioned(
    client: httpx.AsyncClient,
) -> None:
    versioned = await client.get(client_script_url("/api/auth"))
    assert versioned.status_code == 200
    assert versioned.headers["content-type"].startswith("text/javascript")
    assert "immutable" in versioned.headers["cache-control"]
    assert versioned.headers["x-content-type-options"] == "nosniff"
    assert b"authbridge" in versioned.content
    plain = await client.get("/api/auth/client.js")
    assert plain.headers["cache-control"] == "public, max-age=300"


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/auth/signin", "POST"),
        ("GET", "/api/auth/signout", "POST"),
        ("PUT", "/api/auth/refresh", "POST"),
        ("GET", "/api/auth/token", "POST"),
        ("POST", "/api/auth/sessions", "GET"),
        ("DELETE", "/api/auth/sessions/revoke", "POST"),
        ("POST", "/.well-known/jwks.json", "GET, HEAD"),
        ("POST", "/.well-known/openid-configuration", "GET, HEAD"),
        ("POST", "/api/auth/client.js", "GET, HEAD"),
    ],
)
async def test_wrong_methods_are_405_with_allow(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert (response.status_code, response.json()) == (405, {"error": "MethodNotAllowed"})
    assert response.headers["allow"] == allow


async def test_unknown_endpoint_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/auth/nope")
    assert (response.status_code, response.json()) == (404, {"error": "NotFound"})


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"origin": "http://testserver"},  # scheme downgrade is another origin
        {"origin": "https://testserver.evil.example"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
)
@pytest.mark.parametrize(
    "path",
    [
        "/api/auth/signin",
        "/api/auth/signout",
        "/api/auth/refresh",
        "/api/auth/token",
        "/api/auth/sessions/revoke",
    ],
)
async def test_foreign_state_changing_requests_are_403(
    auth: Auth, client: httpx.AsyncClient, headers: dict[str, str], path: str
) -> None:
    body = await sign_up(client)
    response = await client.post(path, json={"others": True}, headers=headers)
    assert (response.status_code, response.json()) == (403, {"error": "Forbidden"})
    assert "set-cookie" not in response.headers
    assert await auth.get_session(body["sessionId"]) is not None


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://testserver"},
        {"origin": "https://app.example"},
        {"sec-fetch-site": "same-origin"},
        {"sec-fetch-site": "none"},
        {},
    ],
)
async def test_same_origin_and_allowed_origins_may_post(
    auth_factory: AuthFactory, client_factory: ClientFactory, headers: dict[str, str]
) -> None:
    auth = await auth_factory(allowed_origins=("https://app.example",))
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    await sign_up(client)
    response = await client.post("/api/auth/token", headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "InvalidJSON"),
        (b"[1, 2, 3]", "InvalidJSON"),
        (b'"a string"', "InvalidJSON"),
        (b"\xff\xfe\x00garbage", "InvalidJSON"),
        (b"[" * 50_000 + b"]" * 50_000, "BodyTooLarge"),
        (b"[" * 30_000 + b"]" * 30_000, "InvalidJSON"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "InvalidJSON"),
    ],
)
async def test_malformed_json_is_400_with_a_code(
    client: httpx.AsyncClient, content: bytes, code: str
) -> None:
    response = await client.post("/api/auth/signin", content=content, headers=JSON_CT)
    expected = 413 if code == "BodyTooLarge" else 400
    assert (response.status_code, response.json()) == (expected, {"error": code})


async def test_huge_bodies_are_413(client: httpx.AsyncClient) -> None:
    payload = json.dumps({"provider": "password", "params": {"password": "x" * 100_000}})
    response = await client.post("/api/auth/signin", content=payload, headers=JSON_CT)
    assert (response.status_code, response.json()) == (413, {"error": "BodyTooLarge"})


async def test_huge_streamed_bodies_are_413_without_reading_everything(
    client: httpx.AsyncClient,
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):
            sent += 1
            yield b"x" * 16_384

    response = await client.post("/api/auth/signin", content=chunks(), headers=JSON_CT)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "multipart/form-data; boundary=x", "application/xml", "application/jsonx"],
)
async def test_wrong_content_types_are_415(client: httpx.AsyncClient, content_type: str) -> None:
    response = await client.post(
        "/api/auth/signin",
        content=b'{"provider":"password"}',
        headers={"content-type": content_type},
    )
    assert (response.status_code, response.json()) == (415, {"error": "UnsupportedMediaType"})


async def test_json_with_a_charset_parameter_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/signin",
        content=json.dumps(
            {
                "provider": "password",
                "params": {"flow": "signUp", "email": "ada@example.com", "password": PASSWORD},
            }
        ),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


async def test_too_many_form_fields_is_400(client: httpx.AsyncClient) -> None:
    content = "&".join(f"f{i}=v" for i in range(200))
    response = await client.post("/api/auth/signin", content=content, headers=FORM_CT)
    assert response.status_code == 400
    assert response.json() == {"error": "InvalidForm"}


# -- configuration and form variants ---------------------------------------------------------------


async def test_the_route_prefix_is_configurable(
    auth_factory: AuthFactory, client_factory: ClientFactory
) -> None:
    auth = await auth_factory(route_prefix="/auth/v1")
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    response = await client.post(
        "/auth/v1/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": "ada@example.com", "password": PASSWORD},
        },
    )
    assert response.status_code == 200
    assert (await client.post("/auth/v1/token")).status_code == 200
    assert (await client.get(client_script_url("/auth/v1"))).status_code == 200
    # The default prefix is now an ordinary app path.
    assert (await client.get("/api/auth/sessions")).json()["authenticated"] is True


async def test_form_rate_limit_errors_go_back_to_the_form(
    auth_factory: AuthFactory, client_factory: ClientFactory
) -> None:
    from authbridge import RateLimitConfig

    auth = await auth_factory(rate_limit=RateLimitConfig(account_attempts=1))
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    await sign_up(client)
    client.cookies.clear()
    locations = []
    for _ in range(3):
        response = await client.post(
            "/api/auth/signin",
            content=form(flow="signIn", email="ada@example.com", password="wrong password"),
            headers={**FORM_CT, "referer": "https://testserver/login"},
        )
        assert response.status_code == 303
        locations.append(response.headers["location"])
    assert locations[-1].startswith("/login?error=TooManyAttempts&flow=signIn")


async def test_form_revoke_of_other_sessions_redirects(
    app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    laptop, phone = client_factory(app), client_factory(app)
    await sign_up(laptop)
    await sign_in(phone)
    response = await laptop.post(
        "/api/auth/sessions/revoke",
        content=form(others="on", redirectTo="/settings"),
        headers=FORM_CT,
    )
    assert (response.status_code, response.headers["location"]) == (303, "/settings")
    assert (await phone.get("/whoami")).json()["authenticated"] is False
    assert (await laptop.get("/whoami")).json()["authenticated"] is True


async def test_revoking_the_current_session_clears_the_cookies(
    client: httpx.AsyncClient,
) -> None:
    body = await sign_up(client)
    response = await client.post("/api/auth/sessions/revoke", json={"sessionId": body["sessionId"]})
    assert response.status_code == 200
    assert all("Max-Age=0" in h for h in set_cookies(response).values())
    assert set(jar_cookies(client)) == {DEVICE}  # a known device, not a session


async def test_sign_in_with_an_expired_token_still_replaces_the_old_session(
    auth: Auth, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    first = await sign_up(client)
    clock.advance(3600)
    second = (await sign_in(client)).json()
    assert second["sessionId"] != first["sessionId"]
    assert await auth.get_session(first["sessionId"]) is None
    assert len(await auth.list_sessions(first["userId"])) == 1


@pytest.mark.parametrize("host", ["testserver:443", "TestServer", "TESTSERVER:443"])
async def test_a_host_header_with_default_port_or_capitals_is_still_same_origin(
    client: httpx.AsyncClient, host: str
) -> None:
    await sign_up(client)
    response = await client.post(
        "/api/auth/token", headers={"host": host, "origin": "https://testserver"}
    )
    assert response.status_code == 200
