"""How the middleware reads credentials at the edges: an empty bearer header, a token close to
expiry on a cross-site subresource request (used, never rotated), an engine that could not open
(bearer tokens wait, they are not called invalid), a claims hook that breaks at refresh time,
and claims hooks refused at startup."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from authbridge import Auth, AuthMiddleware, ConfigError, TrustedIssuer
from authbridge.sessions import SessionInfo
from authbridge.store.users import User
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock as Clock
from tests.toolkit.engines import AuthFactory

from .conftest import JWT, REFRESH, cookie_header, jar_cookies, starlette_app

NEVER_OPENS = "postgresql+asyncpg://app@127.0.0.1:1/app"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """How credentials are read does not depend on the backend: SQLite only."""
    return f"sqlite+aiosqlite:///{tmp_path}/auth.db"


@pytest.mark.parametrize("header", ["Bearer", "Bearer   ", "bearer \t"])
async def test_an_empty_bearer_header_is_malformed(
    auth: Auth, client_factory: ClientFactory, header: str
) -> None:
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    seen = (await client.get("/whoami", headers={"authorization": header})).json()
    assert (seen["userId"], seen["error"], seen["source"]) == (None, "malformed", "bearer")


async def test_a_cross_site_subresource_uses_a_token_near_expiry_without_rotating(
    auth: Auth, client_factory: ClientFactory, clock: Clock
) -> None:
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    body = await sign_up(client)
    clock.advance(timedelta(hours=1) - timedelta(seconds=30))  # inside the refresh margin
    image = await client.get(
        "/whoami",
        headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors"},
    )
    seen = image.json()
    assert (seen["userId"], seen["refreshed"]) == (body["userId"], False)
    assert "set-cookie" not in image.headers
    # The same request from the site itself rotates.
    own = await client.get("/whoami", headers={"sec-fetch-site": "same-origin"})
    assert own.json()["refreshed"] is True


async def test_bearer_tokens_wait_for_an_engine_that_could_not_open(
    auth: Auth, client_factory: ClientFactory, clock: Clock
) -> None:
    token = (await auth.sign_up_with_password("b@example.com", "a long password")).tokens
    config = auth.config.replace(database_url=NEVER_OPENS)
    issuer = TrustedIssuer(
        issuer="https://tenant.example.com/", audience="app", jwks_url="https://127.0.0.1:1/jwks"
    )
    for engine in (
        # Creating the tables needs the database: these engines never open.
        Auth(config, clock=clock, create_tables=True),
        Auth(config.replace(trusted_issuers=(issuer,)), clock=clock, create_tables=True),
    ):
        try:
            client = client_factory(AuthMiddleware(starlette_app(), engine, protect=["/private"]))
            headers = {"authorization": f"Bearer {token.access.token}"}
            seen = (await client.get("/whoami", headers=headers)).json()
            assert (seen["userId"], seen["error"], seen["source"]) == (
                None,
                "unavailable",
                "bearer",
            )
            private = await client.get("/private", headers=headers)
            assert (private.status_code, private.json()) == (503, {"error": "StoreUnavailable"})
        finally:
            await engine.close()


async def test_a_claims_hook_that_breaks_at_refresh_keeps_the_cookies_and_says_so(
    auth_factory: AuthFactory,
    client_factory: ClientFactory,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = False

    async def claims(user: User, session: SessionInfo) -> dict[str, Any]:
        return {"sub": "someone-else"} if broken else {"plan": "pro"}

    auth = await auth_factory({"claims": claims})
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    body = await sign_up(client)
    cookies = jar_cookies(client)
    broken = True
    clock.advance(timedelta(hours=1))
    response = await client.get("/whoami")
    seen = response.json()
    assert (seen["userId"], seen["error"]) == (None, "refresh_failed")
    assert "set-cookie" not in response.headers
    assert "refresh failed" in caplog.text
    # The app fixes its hook: the same cookies refresh.
    broken = False
    headers = cookie_header(**{JWT: cookies[JWT], REFRESH: cookies[REFRESH]})
    again = client_factory(AuthMiddleware(starlette_app(), auth))
    assert (await again.get("/whoami", headers=headers)).json()["userId"] == body["userId"]


@pytest.mark.parametrize(
    ("hook", "problem"),
    [
        ("not a function", "expected an async function"),
        (lambda user, session: {}, "the hook must be async"),
    ],
    ids=["not-callable", "sync"],
)
def test_a_claims_hook_that_is_not_an_async_function_is_refused_at_startup(
    auth: Auth, hook: Any, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        Auth(auth.config, claims=hook)


@pytest.mark.parametrize(
    ("result", "code"),
    [
        (["plan", "pro"], "InvalidClaims"),
        ({1: "one"}, "InvalidClaims"),
        ({"nan": float("nan")}, "InvalidClaims"),
    ],
    ids=["a-list", "number-keys", "not-json"],
)
async def test_claims_that_cannot_go_into_a_token_fail_the_sign_in(
    auth_factory: AuthFactory, client_factory: ClientFactory, result: Any, code: str
) -> None:
    async def claims(user: User, session: SessionInfo) -> Any:
        return result

    auth = await auth_factory({"claims": claims})
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    response = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": "c@example.com", "password": "a long password"},
        },
    )
    assert response.status_code == 500
    assert response.json() == {"error": code}
