"""Bearer tokens from trusted issuers, against real JWKS-serving issuers (``issuer.mjs``, jose):
a Convex Auth-shaped one (RS256, no kid, ``sub`` = ``user|session``, aud ``convex``) and an
Auth0-shaped one (kid, discovery, ``iss`` ending in ``/``). Time moves through the fake clock."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authbridge import (
    Auth,
    AuthConfig,
    AuthMiddleware,
    ConfigError,
    get_auth_session_id,
    get_auth_state,
    get_auth_user,
    get_auth_user_id,
)
from authbridge.trusted import TrustedIssuer
from tests.toolkit.clients import asgi_client
from tests.toolkit.clock import FakeClock
from tests.toolkit.databases import sqlite_url
from tests.toolkit.engines import AuthFactory

from .conftest import NodeIssuer

API = "https://api.example.com"
JSON = "application/json"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: remote tokens never touch the database."""
    return sqlite_url(tmp_path)


async def whoami(request: Request) -> JSONResponse:
    state = get_auth_state(request)
    return JSONResponse(
        {
            "userId": get_auth_user_id(request),
            "sessionId": get_auth_session_id(request),
            "issuer": state.issuer,
            "source": state.source,
            "error": state.error,
            "claims": dict(state.claims),
            "user": await get_auth_user(request) is not None,
        }
    )


def client_for(auth: Auth) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/whoami", whoami), Route("/private", whoami)])
    return asgi_client(AuthMiddleware(app, auth, protect=["/private"]), "http://127.0.0.1")


def claims_at(clock: FakeClock, sub: str, aud: str, **more: Any) -> dict[str, Any]:
    now = int(clock().timestamp())
    return {"sub": sub, "aud": aud, "iat": now, "exp": now + 3600, **more}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def trusting(auth_factory: AuthFactory, *issuers: TrustedIssuer) -> Auth:
    return await auth_factory(trusted_issuers=issuers)


def convex_entry(issuer: NodeIssuer) -> TrustedIssuer:
    return TrustedIssuer(issuer.issuer, "convex", jwks_url=issuer.jwks_url, subject="convex")


async def test_a_convex_token_authenticates_a_request_with_user_and_session_split(
    auth_factory: AuthFactory, convex_issuer: NodeIssuer, clock: FakeClock
) -> None:
    auth = await trusting(auth_factory, convex_entry(convex_issuer))
    token = await convex_issuer.mint(claims_at(clock, "user_abc|session_xyz", "convex"))
    async with client_for(auth) as client:
        me = (await client.get("/whoami", headers=bearer(token))).json()
    assert (me["userId"], me["sessionId"]) == ("user_abc", "session_xyz")
    assert (me["issuer"], me["source"], me["error"]) == (convex_issuer.issuer, "bearer", None)
    assert me["user"] is False  # the Convex user is not one of our users rows


async def test_an_auth0_token_found_through_discovery_authenticates_with_its_subject(
    auth_factory: AuthFactory, auth0_issuer: NodeIssuer, clock: FakeClock
) -> None:
    auth = await trusting(auth_factory, TrustedIssuer(auth0_issuer.issuer, API))
    token = await auth0_issuer.mint(
        claims_at(clock, "auth0|64f1c2", API, sid="sid-1", scope="read:notes", azp="spa")
    )
    async with client_for(auth) as client:
        me = (await client.get("/whoami", headers=bearer(token))).json()
    assert (me["userId"], me["sessionId"], me["issuer"]) == (
        "auth0|64f1c2",
        "sid-1",
        auth0_issuer.issuer,
    )
    assert me["claims"]["scope"] == "read:notes"
    assert (await auth0_issuer.stats()) == {"jwks": 1, "discovery": 1}


async def test_protection_works_the_same_and_our_session_machinery_is_not_involved(
    auth_factory: AuthFactory, convex_issuer: NodeIssuer, clock: FakeClock
) -> None:
    auth = await trusting(auth_factory, convex_entry(convex_issuer))
    token = await convex_issuer.mint(claims_at(clock, "u1|s1", "convex"))
    async with client_for(auth) as client:
        allowed = await client.get("/private", headers=bearer(token))
        denied = await client.get("/private", headers={"accept": "application/json"})
    assert allowed.status_code == 200 and allowed.json()["userId"] == "u1"
    assert "set-cookie" not in allowed.headers
    assert denied.status_code == 401
    async with auth.store.read() as conn:
        from sqlalchemy import func, select

        sessions = (
            await conn.execute(select(func.count()).select_from(auth.store.tables.sessions))
        ).scalar()
    assert sessions == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"aud": "someone-else"}, "invalid_audience"),
        ({"exp": -61}, "expired"),
        ({"iat": 3600 + 61}, "not_yet_valid"),
        ({"iat": None}, "invalid_claims"),
        ({"exp": None}, "invalid_claims"),
        ({"sub": "no-session-part"}, "invalid_claims"),
        ({"sub": "a|b|c"}, "invalid_claims"),
    ],
)
async def test_tokens_failing_a_claim_check_are_refused(
    auth_factory: AuthFactory,
    convex_issuer: NodeIssuer,
    clock: FakeClock,
    change: dict[str, Any],
    reason: str,
) -> None:
    auth = await trusting(auth_factory, convex_entry(convex_issuer))
    now = int(clock().timestamp())
    claims = claims_at(clock, "u1|s1", "convex")
    for name, value in change.items():
        if value is None:
            del claims[name]
        elif name in ("exp", "iat"):
            claims[name] = now + value
        else:
            claims[name] = value
    token = await convex_issuer.mint(claims)
    async with client_for(auth) as client:
        me = (await client.get("/whoami", headers=bearer(token))).json()
        private = await client.get(
            "/private", headers={**bearer(token), "accept": "application/json"}
        )
    assert (me["userId"], me["error"]) == (None, reason)
    assert private.status_code == 401
    assert f'error_description="{reason}"' in private.headers["www-authenticate"]


async def test_clock_skew_inside_the_leeway_is_tolerated(
    auth_factory: AuthFactory, convex_issuer: NodeIssuer, clock: FakeClock
) -> None:
    auth = await trusting(auth_factory, convex_entry(convex_issuer))
    now = int(clock().timestamp())
    token = await convex_issuer.mint(
        {"sub": "u1|s1", "aud": "convex", "iat": now + 59, "exp": now - 59}
    )
    async with client_for(auth) as client:
        assert (await client.get("/whoami", headers=bearer(token))).json()["userId"] == "u1"
        clock.advance(2)  # the verify-once cache re-checks expiry with the same leeway
        assert (await client.get("/whoami", headers=bearer(token))).json()["error"] == "expired"


async def test_an_issuer_not_listed_is_not_trusted(
    auth_factory: AuthFactory, convex_issuer: NodeIssuer, auth0_issuer: NodeIssuer, clock: FakeClock
) -> None:
    auth = await trusting(auth_factory, convex_entry(convex_issuer))
    token = await auth0_issuer.mint(claims_at(clock, "auth0|1", "convex"))
    async with client_for(auth) as client:
        me = (await client.get("/whoami", headers=bearer(token))).json()
    assert me["userId"] is None and me["error"] is not None
    assert (await auth0_issuer.stats())["jwks"] == 0


async def test_a_key_rotated_at_a_convex_issuer_is_picked_up_with_one_fetch(
    auth_factory: AuthFactory, convex_issuer: NodeIssuer, clock: FakeClock
) -> None:
    auth = await trusting(auth_factory, convex_entry(convex_issuer))
    old = await convex_issuer.mint(claims_at(clock, "u1|s1", "convex"))
    async with client_for(auth) as client:
        assert (await client.get("/whoami", headers=bearer(old))).json()["userId"] == "u1"
        clock.advance(31)  # past the refetch cooldown, inside max-age
        await convex_issuer.rotate()
        new = await convex_issuer.mint(claims_at(clock, "u2|s2", "convex"))
        assert (await client.get("/whoami", headers=bearer(new))).json()["userId"] == "u2"
    assert (await convex_issuer.stats())["jwks"] == 2


async def test_a_key_rotated_at_auth0_under_a_new_kid_is_picked_up_with_one_fetch(
    auth_factory: AuthFactory, auth0_issuer: NodeIssuer, clock: FakeClock
) -> None:
    auth = await trusting(auth_factory, TrustedIssuer(auth0_issuer.issuer, API))
    async with client_for(auth) as client:
        first = await auth0_issuer.mint(claims_at(clock, "auth0|1", API))
        assert (await client.get("/whoami", headers=bearer(first))).json()["userId"] == "auth0|1"
        clock.advance(31)
        await auth0_issuer.rotate()
        second = await auth0_issuer.mint(claims_at(clock, "auth0|2", API))
        assert (await client.get("/whoami", headers=bearer(second))).json()["userId"] == "auth0|2"
    assert (await auth0_issuer.stats())["jwks"] == 2


async def test_an_issuer_down_with_a_warm_cache_keeps_verifying_with_stale_keys(
    auth_factory: AuthFactory, convex_issuer: NodeIssuer, clock: FakeClock
) -> None:
    auth = await trusting(auth_factory, convex_entry(convex_issuer))
    async with client_for(auth) as client:
        warm = await convex_issuer.mint(claims_at(clock, "u1|s1", "convex"))
        assert (await client.get("/whoami", headers=bearer(warm))).json()["userId"] == "u1"
        await convex_issuer.set_mode("down")
        clock.advance(301)  # past max-age: the keys are stale and the refetch fails
        later = await convex_issuer.mint(claims_at(clock, "u2|s2", "convex"))
        me = (await client.get("/whoami", headers=bearer(later))).json()
    assert (me["userId"], me["error"]) == ("u2", None)
    assert (await convex_issuer.stats())["jwks"] == 2


async def test_an_issuer_down_with_a_cold_cache_is_unavailable_not_an_invalid_token(
    auth_factory: AuthFactory, convex_issuer: NodeIssuer, clock: FakeClock
) -> None:
    auth = await trusting(auth_factory, convex_entry(convex_issuer))
    await convex_issuer.set_mode("down")
    token = await convex_issuer.mint(claims_at(clock, "u1|s1", "convex"))
    async with client_for(auth) as client:
        me = (await client.get("/whoami", headers=bearer(token))).json()
        private = await client.get(
            "/private", headers={**bearer(token), "accept": "application/json"}
        )
        await convex_issuer.set_mode("up")
        clock.advance(30)  # the failed fetch is retried after the cooldown
        recovered = (await client.get("/whoami", headers=bearer(token))).json()
    assert (me["userId"], me["error"]) == (None, "unavailable")
    assert private.status_code == 503 and private.headers["retry-after"] == "1"
    assert recovered["userId"] == "u1"


async def test_fifty_concurrent_first_requests_cause_one_fetch(
    auth_factory: AuthFactory, convex_issuer: NodeIssuer, clock: FakeClock
) -> None:
    auth = await trusting(auth_factory, convex_entry(convex_issuer))
    tokens = [await convex_issuer.mint(claims_at(clock, f"u{i}|s{i}", "convex")) for i in range(50)]
    async with client_for(auth) as client:
        answers = await asyncio.gather(*(client.get("/whoami", headers=bearer(t)) for t in tokens))
    assert [a.json()["userId"] for a in answers] == [f"u{i}" for i in range(50)]
    assert (await convex_issuer.stats())["jwks"] == 1


async def test_forged_kids_cause_at_most_one_refetch_per_cooldown(
    auth_factory: AuthFactory, auth0_issuer: NodeIssuer, clock: FakeClock
) -> None:
    auth = await trusting(auth_factory, TrustedIssuer(auth0_issuer.issuer, API))
    async with client_for(auth) as client:
        good = await auth0_issuer.mint(claims_at(clock, "auth0|1", API))
        assert (await client.get("/whoami", headers=bearer(good))).json()["userId"] == "auth0|1"
        clock.advance(30)
        forged = [
            await auth0_issuer.mint(claims_at(clock, "auth0|x", API), header={"kid": f"forged-{i}"})
            for i in range(20)
        ]
        burst = await asyncio.gather(*(client.get("/whoami", headers=bearer(t)) for t in forged))
        assert {a.json()["error"] for a in burst} == {"unknown_key"}
        assert (await auth0_issuer.stats())["jwks"] == 2
        clock.advance(29)
        for token in forged:
            await client.get("/whoami", headers=bearer(token))
        assert (await auth0_issuer.stats())["jwks"] == 2
        clock.advance(1)
        for token in forged:
            await client.get("/whoami", headers=bearer(token))
    assert (await auth0_issuer.stats())["jwks"] == 3


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


async def test_algorithm_confusion_is_refused_before_any_key_lookup(
    auth_factory: AuthFactory, convex_issuer: NodeIssuer, clock: FakeClock
) -> None:
    auth = await trusting(auth_factory, convex_entry(convex_issuer))
    jwks = (await convex_issuer.http.get("/.well-known/jwks.json")).json()
    public = json.dumps(jwks["keys"][0]).encode()  # what an attacker would use as an HMAC secret
    claims = {**claims_at(clock, "admin|s1", "convex"), "iss": convex_issuer.issuer}
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT"}, claims)
    hs256 = (
        signing_input
        + "."
        + _b64(hmac.new(public, signing_input.encode(), hashlib.sha256).digest())
    )
    none = _unsigned({"alg": "none", "typ": "JWT"}, claims) + "."
    before = (await convex_issuer.stats())["jwks"]
    async with client_for(auth) as client:
        for token in (hs256, none):
            me = (await client.get("/whoami", headers=bearer(token))).json()
            assert (me["userId"], me["error"]) == (None, "invalid_algorithm")
    assert (await convex_issuer.stats())["jwks"] == before


def test_trusted_issuers_are_read_from_the_environment() -> None:
    config = AuthConfig.from_env(
        {
            "AUTHBRIDGE_TRUSTED_ISSUERS": json.dumps(
                [
                    {
                        "issuer": "https://happy-otter-123.convex.site",
                        "audience": "convex",
                        "subject": "convex",
                    },
                    {
                        "issuer": "https://tenant.eu.auth0.com/",
                        "audience": API,
                        "jwks_url": "https://tenant.eu.auth0.com/.well-known/jwks.json",
                    },
                ]
            )
        }
    )
    assert config.trusted_issuers == (
        TrustedIssuer("https://happy-otter-123.convex.site", "convex", subject="convex"),
        TrustedIssuer(
            "https://tenant.eu.auth0.com/",
            API,
            jwks_url="https://tenant.eu.auth0.com/.well-known/jwks.json",
        ),
    )


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '{"issuer": "https://a.example", "audience": "x"}',
        '[{"issuer": "https://a.example"}]',
        '[{"issuer": "https://a.example", "audience": "x", "subject": "clerk"}]',
        '[{"issuer": "https://a.example", "audience": "x", "algorithm": "HS256"}]',
        '[{"issuer": "http://a.example", "audience": "x"}]',
        '[{"issuer": "https://a.example", "audience": "x"},'
        ' {"issuer": "https://a.example", "audience": "y"}]',
    ],
)
def test_invalid_trusted_issuers_fail_at_startup_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="AUTHBRIDGE_TRUSTED_ISSUERS"):
        AuthConfig.from_env({"AUTHBRIDGE_TRUSTED_ISSUERS": value})


def test_our_own_issuer_cannot_be_listed_as_trusted() -> None:
    config = AuthConfig(
        site_url="https://app.example.com",
        trusted_issuers=(TrustedIssuer("https://app.example.com", "authbridge"),),
    )
    with pytest.raises(ConfigError, match="own issuer"):
        Auth(config)


async def test_a_remote_subject_never_reaches_our_users_sessions_or_session_endpoints(
    auth_factory: AuthFactory, auth0_issuer: NodeIssuer, clock: FakeClock
) -> None:
    auth = await trusting(auth_factory, TrustedIssuer(auth0_issuer.issuer, API))
    ours = await auth.sign_up_with_password("ada@example.com", "correct horse battery staple")
    # Another issuer's namespace may well contain the same strings as ours.
    token = await auth0_issuer.mint(claims_at(clock, ours.user_id, API, sid=ours.session_id))
    headers = {**bearer(token), "accept": JSON}
    async with client_for(auth) as client:
        me = (await client.get("/whoami", headers=headers)).json()
        listed = await client.get("/api/auth/sessions", headers=headers)
        minted = await client.post("/api/auth/token", headers=headers)
        signed_out = await client.post("/api/auth/signout", headers=headers)
    assert (me["userId"], me["issuer"], me["user"]) == (ours.user_id, auth0_issuer.issuer, False)
    assert listed.status_code == 401 and minted.status_code == 401
    assert signed_out.status_code == 200
    assert [s.session_id for s in await auth.list_sessions(ours.user_id)] == [ours.session_id]
    assert auth.verify_token(ours.tokens.access.token).user_id == ours.user_id  # not revoked
