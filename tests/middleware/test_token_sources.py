"""Where the token comes from (Bearer first, else the cookie), what the app sees in
``scope["auth"]`` / ``scope["user"]``, and why a rejected token left the request anonymous."""

from __future__ import annotations

import base64

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authbridge import Auth, AuthMiddleware, AuthState, AuthUser
from authbridge._asgi import Receive, Scope, Send
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.clock import FakeClock

from .conftest import JWT, REFRESH, cookie_header, forge, jar_cookies, starlette_app


@pytest.fixture
def app(auth: Auth) -> AuthMiddleware:
    return AuthMiddleware(starlette_app(), auth)


async def bearer_token(client: httpx.AsyncClient) -> str:
    response = await client.post("/api/auth/token")
    assert response.status_code == 200
    token: str = response.json()["token"]
    return token


async def test_cookie_authenticates_the_browser(
    app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    client = client_factory(app)
    body = await sign_up(client)
    seen = (await client.get("/whoami")).json()
    assert seen["userId"] == body["userId"]
    assert seen["sessionId"] == body["sessionId"]
    assert seen["source"] == "cookie"
    assert seen["starletteUser"] is True


async def test_bearer_authenticates_without_cookies(
    app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    browser = client_factory(app)
    body = await sign_up(browser)
    token = await bearer_token(browser)
    seen = (
        await client_factory(app).get("/whoami", headers={"authorization": f"Bearer {token}"})
    ).json()
    assert (seen["userId"], seen["source"]) == (body["userId"], "bearer")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_bearer_wins_over_the_cookie(
    app: AuthMiddleware, client_factory: ClientFactory, scheme: str
) -> None:
    ada, bob = client_factory(app), client_factory(app)
    await sign_up(ada, "ada@example.com")
    bob_id = (await sign_up(bob, "bob@example.com"))["userId"]
    token = await bearer_token(bob)
    seen = (await ada.get("/whoami", headers={"authorization": f"{scheme} {token}"})).json()
    assert (seen["userId"], seen["source"]) == (bob_id, "bearer")


async def test_a_rejected_bearer_does_not_fall_back_to_the_cookie(
    app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    client = client_factory(app)
    await sign_up(client)
    seen = (await client.get("/whoami", headers={"authorization": "Bearer nope"})).json()
    assert (seen["userId"], seen["source"], seen["error"]) == (None, "bearer", "malformed")


@pytest.mark.parametrize("value", ["Basic YWRhOnNlY3JldA==", "Digest username=ada", "Negotiate x"])
async def test_other_authorization_schemes_leave_cookie_auth_working(
    app: AuthMiddleware, client_factory: ClientFactory, value: str
) -> None:
    # A staging site behind HTTP Basic auth sends Authorization on every request.
    client = client_factory(app)
    body = await sign_up(client)
    seen = (await client.get("/whoami", headers={"authorization": value})).json()
    assert (seen["userId"], seen["source"]) == (body["userId"], "cookie")


async def test_starlette_requires_authenticated_uses_the_auth_state(
    app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    client = client_factory(app)
    assert (await client.get("/members")).status_code == 403
    await sign_up(client)
    response = await client.get("/members")
    assert (response.status_code, response.text) == (200, "members only")


async def test_scope_holds_an_immutable_state_and_a_starlette_user(
    auth: Auth, client_factory: ClientFactory
) -> None:
    captured: dict[str, object] = {}

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        captured.update(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    client = client_factory(AuthMiddleware(raw, auth))
    await sign_up(client)
    await client.get("/")
    state, user = captured["auth"], captured["user"]
    assert isinstance(state, AuthState) and isinstance(user, AuthUser)
    assert user.is_authenticated and user.identity == state.user_id
    assert state.scopes == ("authenticated",)
    with pytest.raises(AttributeError):
        state.user_id = "someone else"  # type: ignore[misc]


def _tamper_payload(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    forged = raw.replace(b'"sub":"', b'"sub":"x')
    return ".".join([header, base64.urlsafe_b64encode(forged).rstrip(b"=").decode(), signature])


async def test_rejected_tokens_leave_the_request_anonymous_with_a_reason(
    auth: Auth, app: AuthMiddleware, client_factory: ClientFactory, clock: FakeClock
) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    real = await bearer_token_for(app, client_factory)
    cases = {
        "malformed": "not-a-jwt",
        "invalid_signature": real[:-6] + ("AAAAAA" if not real.endswith("AAAAAA") else "BBBBBB"),
        "unknown_key": forge(auth, key=other_key, headers={"kid": "someone-else"}),
        "invalid_audience": forge(auth, claims={"aud": "other"}),
        "invalid_issuer": forge(auth, claims={"iss": "https://evil.example"}),
        "invalid_claims": forge(auth, claims={"sub": "no-separator"}),
        "not_yet_valid": forge(auth, claims={"iat": int(clock().timestamp()) + 3600}),
        "expired": forge(auth, claims={"exp": int(clock().timestamp()) - 1}),
    }
    tampered = _tamper_payload(real)
    client = client_factory(app)
    for reason, token in cases.items():
        seen = (await client.get("/whoami", headers={"authorization": f"Bearer {token}"})).json()
        assert (seen["userId"], seen["error"]) == (None, reason), reason
        cookie = (await client.get("/whoami", headers=cookie_header(**{JWT: token}))).json()
        assert (cookie["userId"], cookie["error"]) == (None, reason), reason
    seen = (await client.get("/whoami", headers={"authorization": f"Bearer {tampered}"})).json()
    assert (seen["userId"], seen["error"]) == (None, "invalid_signature")


async def bearer_token_for(app: AuthMiddleware, client_factory: ClientFactory) -> str:
    client = client_factory(app)
    await sign_up(client, "token-holder@example.com")
    return await bearer_token(client)


async def test_a_signed_out_token_is_refused_as_revoked(
    app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    client = client_factory(app)
    await sign_up(client)
    token = await bearer_token(client)
    cookies = jar_cookies(client)
    assert (await client.post("/api/auth/signout")).status_code == 200
    other = client_factory(app)
    seen = (await other.get("/whoami", headers={"authorization": f"Bearer {token}"})).json()
    assert (seen["userId"], seen["error"]) == (None, "revoked")
    # The browser kept an old copy of its cookies (no refresh cookie): refused the same way.
    seen = (await other.get("/whoami", headers=cookie_header(**{JWT: cookies[JWT]}))).json()
    assert (seen["userId"], seen["error"]) == (None, "revoked")
    assert REFRESH in cookies
