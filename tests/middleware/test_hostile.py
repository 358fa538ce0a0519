"""Hostile input: every request here gets anonymous or a clear 4xx with a stable code, never a
500, and leaves the database exactly as it was."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authbridge import Auth, AuthMiddleware
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock

from .conftest import (
    FORM_CT,
    JSON_CT,
    JWT,
    REFRESH,
    cookie_header,
    forge,
    jar_cookies,
    row_counts,
    starlette_app,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)]
    )


def hostile_tokens(auth: Auth, real: str) -> dict[str, str]:
    """Tokens an attacker might present, by name."""
    now = int(auth.clock().timestamp())
    signing = auth.keys.signing_key
    claims = {
        "sub": "victim|session",
        "iss": auth.config.site_url.rstrip("/"),
        "aud": auth.config.audience,
        "iat": now,
        "exp": now + 3600,
    }
    public_pem = signing.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = {"alg": "HS256", "typ": "JWT", "kid": signing.kid}
    signing_input = ".".join(
        [b64(json.dumps(hs_header).encode()), b64(json.dumps(claims).encode())]
    ).encode()
    confused = (
        signing_input.decode()
        + "."
        + b64(hmac.new(public_pem, signing_input, hashlib.sha256).digest())
    )
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header, payload, signature = real.split(".")
    return {
        "alg none": raw_token({"alg": "none", "typ": "JWT"}, claims),
        "alg none with kid": raw_token({"alg": "none", "kid": signing.kid}, claims),
        "alg None": raw_token({"alg": "None", "kid": signing.kid}, claims),
        "alg list": raw_token({"alg": ["ES256"], "kid": signing.kid}, claims, b"x"),
        "alg object": raw_token({"alg": {"a": 1}, "kid": signing.kid}, claims, b"x"),
        "kid list": raw_token({"alg": "ES256", "kid": [signing.kid]}, claims, b"x"),
        "kid number": raw_token({"alg": "ES256", "kid": 7}, claims, b"x"),
        "header array": b64(b"[1,2]") + "." + payload + "." + signature,
        "header not json": b64(b"{oops") + "." + payload + "." + signature,
        "HS256 signed with the public key": confused,
        "RS256 from another key": forge(auth, key=rsa_key, algorithm="RS256"),
        "ES256 from another key, real kid": forge(
            auth, key=ec.generate_private_key(ec.SECP256R1())
        ),
        "unknown kid": forge(
            auth, key=ec.generate_private_key(ec.SECP256R1()), headers={"kid": "nope"}
        ),
        "no kid": raw_token({"alg": "ES256"}, claims, b"x"),
        "wrong iss": forge(auth, claims={"iss": "https://evil.example"}),
        "wrong aud": forge(auth, claims={"aud": "convex"}),
        "aud list without ours": forge(auth, claims={"aud": ["a", "b"]}),
        "expired": forge(auth, claims={"exp": now - 1}),
        "future iat": forge(auth, claims={"iat": now + 3600, "exp": now + 7200}),
        "future nbf": forge(auth, claims={"nbf": now + 3600}),
        "exp string": forge(auth, claims={"exp": "tomorrow"}),
        "exp bool": forge(auth, claims={"exp": True}),
        "exp huge": forge(auth, claims={"exp": 10**30}),
        "iat null": forge(auth, claims={"iat": None}),
        "no sub": forge(auth, drop=("sub",)),
        "sub number": forge(auth, claims={"sub": 12}),
        "sub with two bars": forge(auth, claims={"sub": "a|b|c"}),
        "sub empty parts": forge(auth, claims={"sub": "|"}),
        "tampered payload": header
        + "."
        + b64(json.dumps({**claims, "sub": "admin|x"}).encode())
        + "."
        + signature,
        "truncated signature": real[:-10],
        "truncated to two parts": header + "." + payload,
        "header only": header,
        "four parts": real + ".extra",
        "empty parts": "..",
        "bad base64": "###.###.###",
        "huge": "a" * 9000 + "." + "b" * 9000 + "." + "c",
        "unicode": "\u00e9\u00e9.\u00e9.\u00e9",
    }


EXPECTED_REASONS = {
    "alg none": "invalid_algorithm",
    "alg none with kid": "invalid_algorithm",
    "alg None": "invalid_algorithm",
    "alg list": "invalid_algorithm",
    "alg object": "invalid_algorithm",
    "kid list": "malformed",
    "kid number": "malformed",
    "header array": "malformed",
    "header not json": "malformed",
    "HS256 signed with the public key": "invalid_algorithm",
    "RS256 from another key": "invalid_algorithm",
    "ES256 from another key, real kid": "invalid_signature",
    "unknown kid": "unknown_key",
    "no kid": "unknown_key",
    "wrong iss": "invalid_issuer",
    "wrong aud": "invalid_audience",
    "aud list without ours": "invalid_audience",
    "expired": "expired",
    "future iat": "not_yet_valid",
    "future nbf": "not_yet_valid",
    "exp string": "invalid_claims",
    "exp bool": "invalid_claims",
    "exp huge": "invalid_claims",
    "iat null": "invalid_claims",
    "no sub": "invalid_claims",
    "sub number": "invalid_claims",
    "sub with two bars": "invalid_claims",
    "sub empty parts": "invalid_claims",
    "tampered payload": "invalid_signature",
    "truncated signature": "invalid_signature",
    "truncated to two parts": "malformed",
    "header only": "malformed",
    "four parts": "malformed",
    "empty parts": "malformed",
    "bad base64": "malformed",
    "huge": "malformed",
    "unicode": "malformed",
}
"""The stable reason each hostile token is refused with (``AuthState.error``)."""


@pytest.fixture
async def target(
    auth: Auth, client_factory: ClientFactory
) -> tuple[AuthMiddleware, httpx.AsyncClient, dict[str, str]]:
    """A protected app, a signed-in browser and its cookies."""
    app = AuthMiddleware(starlette_app(), auth, protect=["/private"])
    browser = client_factory(app)
    await sign_up(browser)
    return app, browser, jar_cookies(browser)


async def test_hostile_tokens_are_anonymous_with_a_reason_and_change_nothing(
    auth: Auth,
    target: tuple[AuthMiddleware, httpx.AsyncClient, dict[str, str]],
    client_factory: ClientFactory,
) -> None:
    app, _, cookies = target
    before = await row_counts(auth)
    client = client_factory(app)
    tokens = hostile_tokens(auth, cookies[JWT])
    assert set(tokens) == set(EXPECTED_REASONS)
    for name, token in tokens.items():
        for headers in (
            {b"authorization": f"Bearer {token}".encode()},
            {b"cookie": f"{JWT}={token}".encode()},
        ):
            response = await client.get("/whoami", headers=headers)
            assert response.status_code == 200, (name, response.text)
            seen = response.json()
            assert seen["userId"] is None, name
            # Cookie headers over 16 KB are ignored whole: no token was seen at all.
            ignored = b"cookie" in headers and len(token) > 8000
            assert seen["error"] == (None if ignored else EXPECTED_REASONS[name]), name
            protected = await client.get("/private", headers=headers)
            assert protected.status_code == 401, name
    assert await row_counts(auth) == before


GARBAGE_COOKIES = [
    b"garbage",
    b";;;;;;",
    b"=;=;=",
    b"__Host-authbridge.jwt",
    b"__Host-authbridge.jwt=",
    b'__Host-authbridge.jwt="quoted"',
    b"__Host-authbridge.jwt=\xff\xfe\xfd",
    b"__Host-authbridge.refresh=\xff\xfe.\x00\x01",
    b"__Host-authbridge.refresh=no-dot-here",
    b"__Host-authbridge.refresh=" + b"A" * 22 + b"." + b"B" * 43,
    b"__Host-authbridge.refresh=" + b"." * 100,
    b"__Host-authbridge.refresh=" + b"x" * 4000,
    b"__Host-authbridge.jwt=" + b"a.b.c" * 3000,
    b"a=" + b"b" * 20_000,
    b"; ".join(b"c%d=v" % i for i in range(3000)),
]


async def test_garbage_cookies_are_anonymous_and_change_nothing(
    auth: Auth,
    target: tuple[AuthMiddleware, httpx.AsyncClient, dict[str, str]],
    client_factory: ClientFactory,
) -> None:
    app, _, _ = target
    before = await row_counts(auth)
    client = client_factory(app)
    for cookie in GARBAGE_COOKIES:
        for method in ("GET", "POST"):
            response = await client.request(method, "/whoami", headers={b"cookie": cookie})
            assert response.status_code == 200, cookie[:40]
            assert response.json()["userId"] is None
        refresh = await client.post("/api/auth/refresh", headers={b"cookie": cookie})
        assert (refresh.status_code, refresh.json()) == (401, {"error": "InvalidRefreshToken"})
    assert await row_counts(auth) == before


async def test_an_oversized_cookie_header_is_ignored(
    target: tuple[AuthMiddleware, httpx.AsyncClient, dict[str, str]],
    client_factory: ClientFactory,
) -> None:
    app, _, cookies = target
    header = f"{JWT}={cookies[JWT]}; padding={'x' * 20_000}"
    response = await client_factory(app).get("/whoami", headers={"cookie": header})
    assert response.status_code == 200


async def test_duplicate_cookies_the_first_one_wins(
    target: tuple[AuthMiddleware, httpx.AsyncClient, dict[str, str]],
    client_factory: ClientFactory,
) -> None:
    app, _, cookies = target
    client = client_factory(app)
    good_first = await client.get(
        "/whoami", headers={"cookie": f"{JWT}={cookies[JWT]}; {JWT}=garbage"}
    )
    assert good_first.json()["authenticated"] is True
    bad_first = await client.get(
        "/whoami", headers={"cookie": f"{JWT}=garbage; {JWT}={cookies[JWT]}"}
    )
    assert bad_first.json()["authenticated"] is False
    # Two Cookie headers (HTTP/2 style) are joined.
    split = await client.get(
        "/whoami", headers=[("cookie", "a=1"), ("cookie", f"{JWT}={cookies[JWT]}")]
    )
    assert split.json()["authenticated"] is True


NON_UTF8 = b"\xff\xfe\x80\xc3("
SIGNED_OUT = {"cookie", "authorization"}
"""Unreadable credentials are not read: the request is signed out."""
CROSS_SITE = {"origin", "referer", "sec-fetch-site"}
"""An unreadable origin cannot be verified: an unsafe request counts as cross-site."""
WRONG_METHOD = {
    ("GET", "/api/auth/signin"),
    ("GET", "/api/auth/token"),
    ("POST", "/.well-known/jwks.json"),
    ("POST", "/api/auth/sessions"),
}


def non_utf8_answer(header: str, method: str, path: str) -> int:
    """The status a signed-in browser gets for ``method path`` (an empty JSON body when POST)
    with a non-UTF-8 ``header``."""
    if (method, path) in WRONG_METHOD:
        return 405
    if path in ("/whoami", "/.well-known/jwks.json"):
        return 200  # no auth required
    unsafe = method == "POST"
    if unsafe and path.startswith("/api/auth/"):
        if header == "content-type":
            return 415
        if header in CROSS_SITE:
            return 403
    if path == "/api/auth/signin":
        return 400  # "{}" is not a sign-in
    if header in SIGNED_OUT or (unsafe and header in CROSS_SITE):
        return 401
    return 200


@pytest.mark.parametrize(
    "header",
    [
        "cookie",
        "authorization",
        "origin",
        "user-agent",
        "accept",
        "referer",
        "sec-fetch-site",
        "sec-fetch-mode",
        "content-type",
        "x-authbridge-tab",
        "host",
    ],
)
async def test_non_utf8_header_bytes_never_fail(
    auth: Auth,
    target: tuple[AuthMiddleware, httpx.AsyncClient, dict[str, str]],
    header: str,
) -> None:
    _, browser, _ = target
    before = await row_counts(auth)
    value = NON_UTF8 if header != "authorization" else b"Bearer " + NON_UTF8
    for path in (
        "/whoami",
        "/private",
        "/api/auth/signin",
        "/api/auth/token",
        "/api/auth/sessions",
        "/.well-known/jwks.json",
    ):
        for method in ("GET", "POST"):
            headers = {b"content-type": b"application/json", header.encode(): value}
            response = await browser.request(
                method, path, headers=headers, content=b"{}" if method == "POST" else None
            )
            answer = non_utf8_answer(header, method, path)
            assert response.status_code == answer, (method, path, response.text)
            if response.headers.get("content-type", "").startswith("application/json"):
                response.json()
    assert await row_counts(auth) == before


# Each request, then the status it gets from a signed-in browser and from a fresh client.
HOSTILE_REQUESTS: list[tuple[str, str, dict[str, str], bytes | None, tuple[int, int]]] = [
    (
        "POST",
        "/api/auth/signin",
        JSON_CT,
        b'{"provider": "password", "params": ' + b"[" * 5000,
        (400, 400),
    ),
    ("POST", "/api/auth/signin", JSON_CT, b"[" * 60_000, (400, 400)),
    (
        "POST",
        "/api/auth/signin",
        JSON_CT,
        b'{"provider":"password","params":{"flow":"signIn","email":"' + b"a" * 70_000 + b'"}}',
        (413, 413),
    ),
    (
        "POST",
        "/api/auth/signin",
        JSON_CT,
        b'{"provider":"password","params":{"flow":"signUp","email":null,"password":null}}',
        (400, 400),
    ),
    (
        "POST",
        "/api/auth/signin",
        JSON_CT,
        b'{"provider":"password","params":{"flow":"signUp",'
        b'"email":"x@example.com","password":' + b'"' + b"p" * 2000 + b'"}}',
        (400, 400),
    ),
    (
        "POST",
        "/api/auth/signin",
        JSON_CT,
        b'{"provider":"password","params":{"flow":"signUp",'
        b'"email":"' + b"e" * 400 + b'@example.com",'
        b'"password":"correct horse battery"}}',
        (400, 400),
    ),
    ("POST", "/api/auth/signin", JSON_CT, b'{"provider":"__proto__","params":{}}', (400, 400)),
    ("POST", "/api/auth/signin", JSON_CT, b"1e999999", (400, 400)),
    ("POST", "/api/auth/signin", JSON_CT, b'{"a":' + b"9" * 5000 + b"}", (400, 400)),
    (
        "POST",
        "/api/auth/signin",
        JSON_CT,
        b'{"provider":"password","params":{"flow":"signUp",'
        b'"email":"\\ud800@example.com",'
        b'"password":"correct horse battery"}}',
        (400, 400),
    ),
    ("POST", "/api/auth/signin", {"content-type": "text/plain"}, b"provider=password", (415, 415)),
    (
        "POST",
        "/api/auth/signin",
        {"content-type": "multipart/form-data; boundary=x"},
        b"--x--",
        (415, 415),
    ),
    (
        "POST",
        "/api/auth/signin",
        FORM_CT,
        b"flow=signIn&email=%FF%40example.com&password=" + b"%FF%FE" * 10,
        (400, 400),
    ),
    ("POST", "/api/auth/signin", FORM_CT, b"\xff\xfe=\xfd", (400, 400)),
    ("POST", "/api/auth/signin", FORM_CT, b"&".join(b"a%d=b" % i for i in range(500)), (400, 400)),
    (
        "POST",
        "/api/auth/signin",
        FORM_CT,
        b"flow=signUp&email=x@example.com&password=pw&redirectTo=//evil.com",
        (303, 303),
    ),
    (
        "POST",
        "/api/auth/signin",
        {**JSON_CT, "origin": "https://evil.example"},
        b'{"provider":"password","params":{"flow":"signUp","email":"x@example.com",'
        b'"password":"correct horse battery"}}',
        (403, 403),
    ),
    ("POST", "/api/auth/signout", {**JSON_CT, "sec-fetch-site": "cross-site"}, b"{}", (403, 403)),
    ("POST", "/api/auth/signout", {"origin": "null"}, None, (403, 403)),
    (
        "POST",
        "/api/auth/sessions/revoke",
        {**JSON_CT, "origin": "https://evil.example"},
        b'{"others":true}',
        (403, 403),
    ),
    ("POST", "/api/auth/sessions/revoke", JSON_CT, b'{"sessionId":{"$ne":null}}', (400, 401)),
    (
        "POST",
        "/api/auth/sessions/revoke",
        JSON_CT,
        b'{"sessionId":"' + b"%" * 5000 + b'"}',
        (404, 401),
    ),
    ("POST", "/api/auth/sessions/revoke", JSON_CT, b'{"sessionId":"\' OR 1=1 --"}', (404, 401)),
    ("POST", "/api/auth/refresh", {"cookie": f"{REFRESH}=A.B"}, None, (401, 401)),
    ("POST", "/api/auth/token", {"content-type": "application/json"}, b"null", (400, 400)),
    ("GET", "/api/auth/sessions", {"authorization": "Bearer " + "x" * 50_000}, None, (401, 401)),
    ("GET", "/api/auth/../../etc/passwd", {}, None, (200, 200)),
    ("GET", "/api/auth/%00", {}, None, (404, 404)),
    ("OPTIONS", "/api/auth/signin", {"origin": "https://evil.example"}, None, (405, 405)),
    ("TRACE", "/api/auth/signin", {}, None, (405, 405)),
    ("HEAD", "/api/auth/sessions", {}, None, (200, 401)),
    ("POST", "/whoami", {"origin": "https://evil.example"}, b"", (200, 200)),
    ("GET", "/private?next=//evil.com", {"accept": "text/html"}, None, (200, 303)),
]


@pytest.mark.parametrize(("method", "path", "headers", "content", "answers"), HOSTILE_REQUESTS)
async def test_hostile_requests_get_a_clear_answer_and_change_nothing(
    auth: Auth,
    target: tuple[AuthMiddleware, httpx.AsyncClient, dict[str, str]],
    client_factory: ClientFactory,
    method: str,
    path: str,
    headers: dict[str, str],
    content: bytes | None,
    answers: tuple[int, int],
) -> None:
    app, browser, _ = target
    before = await row_counts(auth)
    for client, status in zip((browser, client_factory(app)), answers):
        response = await client.request(method, path, headers=headers, content=content)
        assert response.status_code == status, response.text
        api = path.startswith("/api/auth/") and method != "HEAD"
        if 400 <= response.status_code < 500 and api:
            assert set(response.json()) <= {"error", "detail"}
            assert response.json()["error"].isidentifier()
        if response.status_code in (302, 303, 307):
            assert response.headers["location"].startswith("/")
            assert not response.headers["location"].startswith("//")
    after = await row_counts(auth)
    assert after == before


async def test_a_cross_site_form_sign_out_keeps_the_session(
    auth: Auth,
    target: tuple[AuthMiddleware, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, browser, _ = target
    response = await browser.post(
        "/api/auth/signout",
        content=b"redirectTo=%2F",
        headers={**FORM_CT, "origin": "https://evil.example"},
    )
    assert (response.status_code, response.json()) == (403, {"error": "Forbidden"})
    assert (await browser.get("/whoami")).json()["authenticated"] is True


async def test_reusing_a_rotated_refresh_token_after_the_window_signs_the_session_out(
    auth: Auth,
    target: tuple[AuthMiddleware, httpx.AsyncClient, dict[str, str]],
    client_factory: ClientFactory,
    clock: FakeClock,
) -> None:
    # A stolen refresh token replayed later ends the session for everyone holding it.
    app, browser, cookies = target
    assert (await browser.post("/api/auth/refresh")).status_code == 200
    assert (await browser.post("/api/auth/refresh")).status_code == 200  # the child is used
    clock.advance(60)
    stolen = await client_factory(app).post(
        "/api/auth/refresh", headers=cookie_header(**{REFRESH: cookies[REFRESH]})
    )
    assert (stolen.status_code, stolen.json()) == (401, {"error": "RefreshTokenReused"})
    assert (await browser.get("/whoami")).json()["authenticated"] is False


async def test_per_tab_hostile_tab_ids_never_fail(
    auth_factory: Any, client_factory: ClientFactory
) -> None:
    auth = await auth_factory(session_sharing="per_tab")
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    await sign_up(client)
    for tab in ("../../x", "a" * 5000, "tab;x=1", "", "\u00e9" * 8, "abc def ghi"):
        for headers in (
            {b"x-authbridge-tab": tab.encode("utf-8")},
            {b"cookie": b"authbridge.tab=" + tab.encode("utf-8")},
        ):
            response = await client.get("/whoami", headers=headers)
            assert response.status_code == 200, tab
        response = await client.post(
            "/api/auth/signout",
            content=b"authbridge_tab=" + tab.encode("utf-8"),
            headers=FORM_CT,
        )
        assert response.status_code == 303, tab  # signed out, back to the page
