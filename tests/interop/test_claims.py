"""The custom-claims hook: what it receives, where its claims show up, and what it may not do."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from authbridge import (
    Auth,
    AuthMiddleware,
    ConfigError,
    SessionInfo,
    TokenIssueError,
    User,
    get_auth_state,
    ssr,
)
from tests.toolkit.clients import asgi_client
from tests.toolkit.engines import PASSWORD, AuthFactory


class Roles:
    """A stand-in for the app's own table of roles; the hook reads it on every issue."""

    def __init__(self) -> None:
        self.role = "reader"
        self.calls: list[tuple[User, SessionInfo]] = []

    async def __call__(self, user: User, session: SessionInfo) -> dict[str, Any]:
        self.calls.append((user, session))
        return {"role": self.role, "org": {"id": "org_1", "name": "Acme"}}


def app_for(auth: Auth) -> AuthMiddleware:
    env = jinja2.Environment(
        loader=jinja2.DictLoader({"page.html": '<p id="role">{{ auth.claims.role }}</p>'}),
        autoescape=True,
    )
    ssr.install(env)

    async def me(request: Request) -> JSONResponse:
        return JSONResponse(dict(get_auth_state(request).claims))

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(env.get_template("page.html").render(ssr.context(request)))

    return AuthMiddleware(Starlette(routes=[Route("/me", me), Route("/page", page)]), auth)


async def test_the_hook_gets_the_user_and_session_rows_and_its_claims_are_signed(
    auth_factory: AuthFactory,
) -> None:
    roles = Roles()
    auth = await auth_factory(auth_kwargs={"claims": roles})
    result = await auth.sign_up_with_password("ada@example.com", PASSWORD, ip="10.0.0.1")
    verified = auth.verify_token(result.tokens.access.token)
    assert verified.claims["role"] == "reader"
    assert verified.claims["org"] == {"id": "org_1", "name": "Acme"}
    user, session = roles.calls[0]
    assert (user.id, user.email) == (result.user_id, "ada@example.com")
    assert (session.session_id, session.user_id) == (result.session_id, result.user_id)
    assert session.created_ip == "10.0.0.1"


async def test_claims_are_refreshed_at_each_rotation(auth_factory: AuthFactory) -> None:
    roles = Roles()
    auth = await auth_factory(auth_kwargs={"claims": roles})
    result = await auth.sign_up_with_password("ada@example.com", PASSWORD)
    roles.role = "admin"
    refreshed = await auth.refresh(result.tokens.refresh_token)
    assert auth.verify_token(refreshed.access.token).claims["role"] == "admin"
    assert len(roles.calls) == 2
    assert roles.calls[1][1].session_id == result.session_id


async def test_claims_are_readable_from_the_state_and_in_templates(
    auth_factory: AuthFactory,
) -> None:
    auth = await auth_factory(auth_kwargs={"claims": Roles()})
    async with asgi_client(app_for(auth), "http://127.0.0.1") as client:
        signed_in = await client.post(
            "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": "signUp", "email": "ada@example.com", "password": PASSWORD},
            },
        )
        assert signed_in.status_code == 200
        me = (await client.get("/me")).json()
        page = await client.get("/page")
    assert me["role"] == "reader" and me["org"]["name"] == "Acme"
    assert '<p id="role">reader</p>' in page.text


@pytest.mark.parametrize("name", ["sub", "iss", "aud", "exp", "iat", "nbf", "jti"])
async def test_a_hook_returning_a_reserved_name_is_refused_at_call(
    auth_factory: AuthFactory, name: str
) -> None:
    async def claims(user: User, session: SessionInfo) -> dict[str, Any]:
        return {name: "forged", "role": "x"}

    auth = await auth_factory(auth_kwargs={"claims": claims})
    with pytest.raises(TokenIssueError) as caught:
        await auth.sign_up_with_password("ada@example.com", PASSWORD)
    assert caught.value.code == "ReservedClaim"
    assert name in str(caught.value)


async def test_a_sync_hook_is_refused_at_startup(auth_factory: AuthFactory) -> None:
    def claims(user: User, session: SessionInfo) -> dict[str, Any]:
        return {}

    with pytest.raises(ConfigError, match="must be async"):
        await auth_factory(auth_kwargs={"claims": claims})


async def test_claims_and_custom_claims_together_are_refused_at_startup(
    auth_factory: AuthFactory,
) -> None:
    with pytest.raises(ConfigError, match="not both"):
        await auth_factory(auth_kwargs={"claims": Roles(), "custom_claims": lambda u, s: {}})


async def test_non_json_claims_fail_with_a_clear_code(auth_factory: AuthFactory) -> None:
    async def claims(user: User, session: SessionInfo) -> dict[str, Any]:
        return {"when": object()}

    auth = await auth_factory(auth_kwargs={"claims": claims})
    with pytest.raises(TokenIssueError) as caught:
        await auth.sign_up_with_password("ada@example.com", PASSWORD)
    assert caught.value.code == "InvalidClaims"


async def test_a_token_too_large_for_a_cookie_is_a_clear_error_not_a_dropped_cookie(
    auth_factory: AuthFactory,
) -> None:
    async def claims(user: User, session: SessionInfo) -> dict[str, Any]:
        return {"groups": [f"group-{i:04d}" for i in range(400)]}

    auth = await auth_factory(auth_kwargs={"claims": claims})
    async with asgi_client(app_for(auth), "http://127.0.0.1") as client:
        response = await client.post(
            "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": "signUp", "email": "ada@example.com", "password": PASSWORD},
            },
        )
    assert response.json() == {"error": "TokenTooLarge"}
    assert "set-cookie" not in response.headers


async def test_the_older_custom_claims_factory_still_works(auth_factory: AuthFactory) -> None:
    auth = await auth_factory(auth_kwargs={"custom_claims": lambda u, s: {"plan": "pro"}})
    result = await auth.sign_up_with_password("ada@example.com", PASSWORD)
    assert result.tokens.access.claims["plan"] == "pro"
