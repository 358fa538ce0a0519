"""Sessions record when and how the user authenticated; step-up checks read it from the token."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt as pyjwt
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authbridge import (
    AuthMiddleware,
    RecentAuth,
    RecentAuthRequired,
    TokenIssueError,
    get_auth_state,
    recent_auth_response,
    require_recent_auth,
)
from tests.toolkit.clients import ClientFactory, sign_in, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory

from .conftest import JSON_CT

FIVE_MINUTES = timedelta(minutes=5)
HTML = {"accept": "text/html,application/xhtml+xml"}


async def danger(request: Request) -> Response:
    state = require_recent_auth(request, FIVE_MINUTES)
    return JSONResponse({"ok": True, "amr": list(state.amr)})


async def me(request: Request) -> Response:
    state = get_auth_state(request)
    auth_time = state.auth_time
    return JSONResponse(
        {"authTime": auth_time.isoformat() if auth_time else None, "amr": list(state.amr)}
    )


def app_with(protect: Any = None) -> Starlette:
    return Starlette(
        routes=[
            Route("/danger", danger, methods=["GET", "POST"]),
            Route("/me", me),
            Route("/settings/{rest:path}", me),
        ],
        exception_handlers={RecentAuthRequired: recent_auth_response},
    )


async def raw_danger(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain ASGI app: the middleware answers the exception it raises."""
    require_recent_auth(scope, FIVE_MINUTES)
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"ok": true}'})


async def test_a_sign_in_records_auth_time_and_amr_on_the_session_and_in_the_token(
    auth_factory: AuthFactory, client_factory: ClientFactory, clock: FakeClock
) -> None:
    auth = await auth_factory()
    client = client_factory(AuthMiddleware(app_with(), auth))
    body = await sign_up(client)
    sessions = auth.store.tables.sessions
    async with auth.store.read() as conn:
        row = (await conn.execute(select(sessions).where(sessions.c.id == body["sessionId"]))).one()
    assert row.auth_time == clock.now and row.amr == "pwd"
    token = (await client.post("/api/auth/token", headers=JSON_CT)).json()["token"]
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert claims["auth_time"] == int(clock.now.timestamp()) and claims["amr"] == ["pwd"]
    seen = (await client.get("/me")).json()
    assert seen == {"authTime": clock.now.isoformat(), "amr": ["pwd"]}
    session = await auth.get_session(body["sessionId"])
    assert session is not None and session.auth_time == clock.now and session.amr == ("pwd",)


async def test_a_refresh_keeps_the_original_auth_time(
    auth_factory: AuthFactory, client_factory: ClientFactory, clock: FakeClock
) -> None:
    auth = await auth_factory()
    client = client_factory(AuthMiddleware(app_with(), auth))
    await sign_up(client)
    signed_in_at = clock.now
    clock.advance(timedelta(hours=2))  # the access token expired: the middleware refreshes
    refreshed = await client.post("/api/auth/refresh", headers=JSON_CT)
    assert refreshed.status_code == 200
    claims = pyjwt.decode(refreshed.json()["token"], options={"verify_signature": False})
    assert claims["auth_time"] == int(signed_in_at.timestamp())
    assert claims["iat"] == int(clock.now.timestamp())
    assert (await client.get("/me")).json()["authTime"] == signed_in_at.isoformat()


@pytest.mark.parametrize(
    ("elapsed", "status"), [(FIVE_MINUTES, 200), (FIVE_MINUTES + timedelta(seconds=1), 401)]
)
async def test_require_recent_auth_accepts_up_to_max_age_and_refuses_after(
    auth_factory: AuthFactory,
    client_factory: ClientFactory,
    clock: FakeClock,
    elapsed: timedelta,
    status: int,
) -> None:
    auth = await auth_factory(jwt_duration=timedelta(hours=1))
    client = client_factory(AuthMiddleware(app_with(), auth))
    await sign_up(client)
    clock.advance(elapsed)
    response = await client.post("/danger", headers=JSON_CT)
    assert response.status_code == status
    if status == 401:
        assert response.json() == {"error": "RecentAuthRequired"}
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_user_authentication"' in challenge
        assert "max_age=300" in challenge
    else:
        assert response.json() == {"ok": True, "amr": ["pwd"]}


async def test_a_stale_html_navigation_goes_to_the_reauthentication_page_and_back(
    auth_factory: AuthFactory, client_factory: ClientFactory, clock: FakeClock
) -> None:
    auth = await auth_factory()
    client = client_factory(AuthMiddleware(app_with(), auth))
    await sign_up(client)
    clock.advance(timedelta(minutes=10))
    response = await client.get("/danger?x=1", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?reauth=1&next=%2Fdanger%3Fx%3D1"
    # Signing in again (the re-authentication page's form) makes the next try pass.
    assert (await sign_in(client)).status_code == 200
    assert (await client.get("/danger", headers=HTML)).status_code == 200


async def test_signed_out_requests_get_recent_auth_required(
    auth_factory: AuthFactory, client_factory: ClientFactory
) -> None:
    auth = await auth_factory()
    client = client_factory(AuthMiddleware(app_with(), auth))
    response = await client.post("/danger", headers=JSON_CT)
    assert response.status_code == 401 and response.json() == {"error": "RecentAuthRequired"}


async def test_the_middleware_answers_the_exception_of_a_plain_asgi_app(
    auth_factory: AuthFactory, client_factory: ClientFactory, clock: FakeClock
) -> None:
    auth = await auth_factory(reauth_path="/confirm-it-is-you")
    client = client_factory(AuthMiddleware(raw_danger, auth))
    await sign_up(client)
    assert (await client.get("/anything")).json() == {"ok": True}
    clock.advance(timedelta(minutes=6))
    stale = await client.get("/anything")
    assert stale.status_code == 401 and stale.json() == {"error": "RecentAuthRequired"}
    page = await client.get("/anything", headers=HTML)
    assert page.status_code == 303
    assert page.headers["location"] == "/confirm-it-is-you?next=%2Fanything"


async def test_a_recent_auth_protect_rule_guards_its_routes_only(
    auth_factory: AuthFactory, client_factory: ClientFactory, clock: FakeClock
) -> None:
    auth = await auth_factory()
    rule = RecentAuth("/settings/security/**", max_age=timedelta(minutes=2))
    client = client_factory(AuthMiddleware(app_with(), auth, protect=["/settings/**", rule]))
    anonymous = await client.get("/settings/security/totp", headers=HTML)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/signin?next=")
    await sign_up(client)
    assert (await client.get("/settings/security/totp")).status_code == 200
    clock.advance(timedelta(minutes=2, seconds=1))
    assert (await client.get("/settings/profile")).status_code == 200
    stale = await client.get("/settings/security/totp")
    assert stale.status_code == 401 and stale.json() == {"error": "RecentAuthRequired"}
    page = await client.get("/settings/security", headers=HTML)
    assert page.status_code == 303
    assert page.headers["location"] == "/signin?reauth=1&next=%2Fsettings%2Fsecurity"


async def test_custom_claims_cannot_forge_auth_time(auth_factory: AuthFactory) -> None:
    async def claims(user: Any, session: Any) -> dict[str, Any]:
        return {"auth_time": 4102444800}

    auth = await auth_factory(auth_kwargs={"claims": claims})
    with pytest.raises(TokenIssueError) as caught:
        await auth.sign_up_with_password("a@example.com", "x" * 12)
    assert caught.value.code == "ReservedClaim"
