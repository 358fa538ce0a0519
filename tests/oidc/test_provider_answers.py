"""What a provider answers, checked field by field: a scripted provider (a small ASGI app served
by uvicorn on 127.0.0.1) gives the token, profile and discovery answers a real one could give,
good and broken; every broken one ends the flow at ``/signin?error=OAuthProviderError`` with a
log line saying why, and signs no one in."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm

from authbridge import Auth, AuthConfig, AuthMiddleware, ConfigError, OAuthProviderError
from authbridge.config import OAuthProviderConfig
from authbridge.providers.oauth import OAuthProvider
from tests.toolkit.servers import serve

from .conftest import APP, PREFIX, probe_app

FAILED = "/signin?error=OAuthProviderError"
Answer = tuple[int, bytes]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The provider's answers do not depend on the backend: SQLite only."""
    return f"sqlite+aiosqlite:///{tmp_path}/auth.db"


@dataclass
class ScriptedProvider:
    """Answers each path with what the test set (``answer``); 404 otherwise. Records requests."""

    url: str = ""
    answers: dict[str, Answer | Callable[[dict[str, str]], Answer]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    authorization: dict[str, str] = field(default_factory=dict)
    """The last ``Authorization`` header seen per path."""

    def answer(self, path: str, document: Any, status: int = 200) -> None:
        self.answers[path] = (status, json.dumps(document).encode())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        form = dict(parse_qsl(body.decode()))
        self.requests.append((scope["path"], form))
        for name, value in scope["headers"]:
            if name == b"authorization":
                self.authorization[scope["path"]] = value.decode()
        answer = self.answers.get(scope["path"], (404, b"{}"))
        status, payload = answer(form) if callable(answer) else answer
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
async def provider() -> AsyncIterator[ScriptedProvider]:
    scripted = ScriptedProvider()
    async with serve(scripted) as url:
        scripted.url = url
        yield scripted


@dataclass
class Site:
    """An app signing in with one provider, and a browser (an in-process client) for it."""

    auth: Auth
    client: httpx.AsyncClient

    async def start(self, provider_id: str) -> dict[str, str]:
        """Start a sign-in; returns the authorization request's parameters."""
        response = await self.client.post(
            f"{PREFIX}/signin",
            json={"provider": provider_id, "params": {"redirectTo": "/after"}},
        )
        assert response.status_code == 200, response.text
        return dict(parse_qsl(urlsplit(response.json()["redirect"]).query))

    async def come_back(self, provider_id: str, **params: str) -> str:
        """The provider sends the browser back; returns where the app sends it next."""
        response = await self.client.get(f"{PREFIX}/callback/{provider_id}", params=params)
        assert response.status_code == 303, response.text
        return str(response.headers["location"])

    async def sign_in(self, provider_id: str) -> str:
        state = (await self.start(provider_id))["state"]
        return await self.come_back(provider_id, code="the-code", state=state)

    async def user_id(self) -> str | None:
        response = await self.client.get("/whoami")
        user_id: str | None = response.json()["userId"]
        return user_id


SiteFactory = Callable[..., Awaitable[Site]]


@pytest.fixture
async def site_factory(auth_factory: Any) -> AsyncIterator[SiteFactory]:
    clients: list[httpx.AsyncClient] = []

    async def factory(config: OAuthProviderConfig) -> Site:
        auth = await auth_factory({"providers": [OAuthProvider(config)]}, site_url=APP)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=AuthMiddleware(probe_app(), auth)),
            base_url=APP,
            follow_redirects=False,
        )
        clients.append(client)
        return Site(auth, client)

    yield factory
    for client in clients:
        await client.aclose()


def discord(provider: ScriptedProvider, **fields: Any) -> OAuthProviderConfig:
    values: dict[str, Any] = {
        "id": "discord",
        "client_id": "discord-client",
        "client_secret": "discord-secret",
        "authorization_url": provider.url + "/authorize",
        "token_url": provider.url + "/token",
        "userinfo_url": provider.url + "/users/@me",
    }
    values.update(fields)
    return OAuthProviderConfig(**values)


DISCORD_USER = {
    "id": "80351110224678912",
    "username": "nelly",
    "global_name": "Nelly",
    "avatar": "8342729096ea3675442027381ff50dfe",
    "email": "Nelly@Example.com",
    "verified": True,
}


# -- Discord: a plain OAuth 2 provider with its own profile API --------------------------------


@pytest.mark.parametrize(
    ("avatar", "image"),
    [
        (
            "8342729096ea3675442027381ff50dfe",
            "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png",
        ),
        ("../../elsewhere", None),
        (None, None),
    ],
)
async def test_a_discord_profile_becomes_the_user(
    provider: ScriptedProvider, site_factory: SiteFactory, avatar: str | None, image: str | None
) -> None:
    provider.answer("/token", {"access_token": "discord-token", "token_type": "Bearer"})
    provider.answer("/users/@me", {**DISCORD_USER, "avatar": avatar})
    site = await site_factory(discord(provider))
    assert await site.sign_in("discord") == "/after"
    user = await site.auth.get_user(await site.user_id() or "")
    assert user is not None
    assert (user.email, user.name, user.image) == ("nelly@example.com", "Nelly", image)
    token_path, form = provider.requests[0]
    assert token_path == "/token"
    # Discord takes the client's credentials in the form.
    assert (form["client_id"], form["client_secret"]) == ("discord-client", "discord-secret")
    assert form["grant_type"] == "authorization_code" and form["code"] == "the-code"


async def test_a_discord_profile_without_an_id_is_refused(
    provider: ScriptedProvider, site_factory: SiteFactory, caplog: pytest.LogCaptureFixture
) -> None:
    provider.answer("/token", {"access_token": "discord-token"})
    provider.answer("/users/@me", {k: v for k, v in DISCORD_USER.items() if k != "id"})
    site = await site_factory(discord(provider))
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        assert await site.sign_in("discord") == FAILED
    assert "Discord user: no id" in caplog.text
    assert await site.user_id() is None


async def test_a_callback_without_a_code_is_refused_before_calling_the_provider(
    provider: ScriptedProvider, site_factory: SiteFactory, caplog: pytest.LogCaptureFixture
) -> None:
    site = await site_factory(discord(provider))
    state = (await site.start("discord"))["state"]
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        assert await site.come_back("discord", state=state) == FAILED
    assert "the callback carries no code" in caplog.text
    assert provider.requests == []


# -- the token endpoint ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ((200, b"<html>sign in again</html>"), "code exchange: HTTP 200, not a JSON object"),
        ((200, b'{"token_type": "Bearer"}'), "code exchange: no access_token"),
        ((200, b'{"access_token": ""}'), "code exchange: no access_token"),
        ((200, b" " * (256 * 1024 + 1)), "code exchange: the answer is too large"),
        ((400, b'{"error": "invalid_grant"}'), "HTTP 400, error=invalid_grant"),
    ],
)
async def test_a_broken_token_answer_is_refused(
    provider: ScriptedProvider,
    site_factory: SiteFactory,
    caplog: pytest.LogCaptureFixture,
    answer: Answer,
    why: str,
) -> None:
    provider.answers["/token"] = answer
    provider.answer("/users/@me", DISCORD_USER)
    site = await site_factory(discord(provider))
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        assert await site.sign_in("discord") == FAILED
    assert why in caplog.text
    assert await site.user_id() is None
    assert [path for path, _ in provider.requests] == ["/token"]


async def test_a_token_endpoint_that_refuses_connections_is_a_provider_error(
    provider: ScriptedProvider, site_factory: SiteFactory, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/token"
    site = await site_factory(discord(provider, token_url=closed))
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        assert await site.sign_in("discord") == FAILED
    assert "code exchange: ConnectError" in caplog.text


# -- GitHub: a profile from two API calls ------------------------------------------------------


def github(provider: ScriptedProvider) -> OAuthProviderConfig:
    return OAuthProviderConfig(
        id="github",
        client_id="github-client",
        client_secret="github-secret",
        authorization_url=provider.url + "/login/oauth/authorize",
        token_url=provider.url + "/login/oauth/access_token",
        userinfo_url=provider.url + "/user",
    )


@pytest.mark.parametrize(
    ("user", "why"),
    [
        ((200, b"<html>rate limited</html>"), "GitHub user: HTTP 200"),
        ((401, b'{"message": "Bad credentials"}'), "GitHub user: HTTP 401"),
        ((200, b'{"login": "octocat"}'), "GitHub user: no numeric id"),
        ((200, b'{"id": "583231", "login": "octocat"}'), "GitHub user: no numeric id"),
    ],
)
async def test_a_github_user_answer_without_a_numeric_id_is_refused(
    provider: ScriptedProvider,
    site_factory: SiteFactory,
    caplog: pytest.LogCaptureFixture,
    user: Answer,
    why: str,
) -> None:
    provider.answer("/login/oauth/access_token", {"access_token": "gho_token"})
    provider.answers["/user"] = user
    provider.answer("/user/emails", [])
    site = await site_factory(github(provider))
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        assert await site.sign_in("github") == FAILED
    assert why in caplog.text
    assert await site.user_id() is None


async def test_a_github_user_without_a_primary_email_signs_in_without_one(
    provider: ScriptedProvider, site_factory: SiteFactory
) -> None:
    provider.answer("/login/oauth/access_token", {"access_token": "gho_token"})
    provider.answer("/user", {"id": 583231, "login": "octocat", "avatar_url": "http://x/a.png"})
    provider.answer("/user/emails", {"message": "not a list"})
    site = await site_factory(github(provider))
    assert await site.sign_in("github") == "/after"
    user = await site.auth.get_user(await site.user_id() or "")
    assert user is not None and (user.email, user.name, user.image) == (None, "octocat", None)


# -- discovery, ID tokens and userinfo (a generic provider) -----------------------------------


@dataclass
class Issuer:
    """Discovery, keys and ID tokens of the scripted provider as an OpenID provider."""

    provider: ScriptedProvider
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def publish(self, **metadata: Any) -> None:
        url = self.provider.url
        document = {
            "issuer": url,
            "authorization_endpoint": url + "/authorize",
            "token_endpoint": url + "/token",
            "userinfo_endpoint": url + "/userinfo",
            "jwks_uri": url + "/jwks",
        }
        document.update(metadata)
        self.provider.answer(
            "/.well-known/openid-configuration",
            {k: v for k, v in document.items() if v is not None},
        )
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.provider.answer("/jwks", {"keys": [{**jwk, "kid": self.kid, "use": "sig"}]})

    def id_token(self, client_id: str, nonce: str, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": self.provider.url,
            "aud": client_id,
            "sub": "subject-1",
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            **claims,
        }
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})


def generic(provider: ScriptedProvider, **fields: Any) -> OAuthProviderConfig:
    values: dict[str, Any] = {
        "id": "idp",
        "client_id": "idp-client",
        "client_secret": "idp-secret",
        "issuer": provider.url,
    }
    values.update(fields)
    return OAuthProviderConfig(**values)


async def test_discovery_without_a_token_endpoint_fails_the_start_with_a_502(
    provider: ScriptedProvider, site_factory: SiteFactory, caplog: pytest.LogCaptureFixture
) -> None:
    Issuer(provider).publish(token_endpoint=None)
    site = await site_factory(generic(provider))
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        response = await site.client.post(
            f"{PREFIX}/signin", json={"provider": "idp", "params": {}}
        )
    assert response.status_code == 502
    assert response.json()["error"] == "OAuthProviderError"
    assert "discovery lacks token_endpoint" in caplog.text


@pytest.mark.parametrize(
    ("userinfo", "why"),
    [
        ((500, b'{"error": "server_error"}'), "userinfo: HTTP 500"),
        ((200, b"[]"), "userinfo: HTTP 200"),
        ((200, b'{"name": "No Subject"}'), "no usable subject"),
        ((200, b'{"sub": ""}'), "no usable subject"),
    ],
)
async def test_a_plain_oauth_provider_needs_a_userinfo_answer_with_a_subject(
    provider: ScriptedProvider,
    site_factory: SiteFactory,
    caplog: pytest.LogCaptureFixture,
    userinfo: Answer,
    why: str,
) -> None:
    """Without ``openid`` in the scopes there is no ID token: the profile is userinfo's."""
    Issuer(provider).publish()
    provider.answer("/token", {"access_token": "plain-token"})
    provider.answers["/userinfo"] = userinfo
    site = await site_factory(generic(provider, scopes=("profile", "email")))
    params = await site.start("idp")
    assert "nonce" not in params
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        assert await site.come_back("idp", code="c", state=params["state"]) == FAILED
    assert why in caplog.text


async def test_a_plain_oauth_provider_signs_in_with_its_userinfo_profile(
    provider: ScriptedProvider, site_factory: SiteFactory
) -> None:
    Issuer(provider).publish()
    provider.answer("/token", {"access_token": "plain-token"})
    provider.answer(
        "/userinfo",
        {"sub": "u-42", "email": "Grace@Example.com", "email_verified": "true", "name": "Grace"},
    )
    site = await site_factory(generic(provider, scopes=("profile", "email")))
    assert await site.sign_in("idp") == "/after"
    user = await site.auth.get_user(await site.user_id() or "")
    assert user is not None and (user.email, user.name) == ("grace@example.com", "Grace")
    assert provider.authorization["/userinfo"] == "Bearer plain-token"


async def test_an_openid_token_answer_without_an_id_token_is_refused(
    provider: ScriptedProvider, site_factory: SiteFactory, caplog: pytest.LogCaptureFixture
) -> None:
    Issuer(provider).publish()
    provider.answer("/token", {"access_token": "t", "token_type": "Bearer"})
    site = await site_factory(generic(provider))
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        assert await site.sign_in("idp") == FAILED
    assert "the token response has no id_token" in caplog.text


async def test_userinfo_about_another_subject_than_the_id_token_is_refused(
    provider: ScriptedProvider, site_factory: SiteFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """OIDC Core §5.3.2: the ID token lacks the email, so userinfo is asked; it answers for
    someone else, and nothing of it may be used."""
    issuer = Issuer(provider)
    issuer.publish()
    site = await site_factory(generic(provider))
    params = await site.start("idp")
    token = issuer.id_token("idp-client", params["nonce"], sub="victim")
    provider.answer("/token", {"access_token": "t", "id_token": token})
    provider.answer("/userinfo", {"sub": "attacker", "email": "attacker@example.com"})
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        assert await site.come_back("idp", code="c", state=params["state"]) == FAILED
    assert "userinfo sub differs from the ID token's" in caplog.text
    assert await site.user_id() is None


async def test_an_id_token_with_a_complete_profile_needs_no_userinfo_call(
    provider: ScriptedProvider, site_factory: SiteFactory
) -> None:
    issuer = Issuer(provider)
    issuer.publish()
    site = await site_factory(generic(provider))
    params = await site.start("idp")
    token = issuer.id_token(
        "idp-client", params["nonce"], email="lin@example.com", email_verified=True, name="Lin"
    )
    provider.answer("/token", {"access_token": "t", "id_token": token})
    assert await site.come_back("idp", code="c", state=params["state"]) == "/after"
    assert "/userinfo" not in [path for path, _ in provider.requests]


# -- provider tokens kept for the app ----------------------------------------------------------


async def test_an_expired_provider_token_without_a_refresh_token_is_a_provider_error(
    provider: ScriptedProvider, site_factory: SiteFactory, clock: Any
) -> None:
    provider.answer("/token", {"access_token": "short-lived", "expires_in": 300})
    provider.answer("/users/@me", DISCORD_USER)
    site = await site_factory(discord(provider, store_provider_tokens=True))
    assert await site.sign_in("discord") == "/after"
    user_id = await site.user_id()
    assert user_id is not None
    assert await site.auth.provider_access_token(user_id, "discord") == "short-lived"
    clock.advance(300)
    with pytest.raises(OAuthProviderError, match="no refresh token"):
        await site.auth.provider_access_token(user_id, "discord")
    # A user who never signed in with the provider has no token.
    assert await site.auth.provider_access_token("someone-else", "discord") is None


# -- Apple: a client secret signed with the developer key --------------------------------------


def _pem(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"team_id": None}, "needs AUTHBRIDGE_OAUTH_APPLE_TEAM_ID"),
        (
            {"client_secret": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----"},
            "client secret is not a PEM key",
        ),
        (
            {"client_secret": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))},
            "the key must be an EC (P-256) key",
        ),
    ],
)
def test_an_unusable_apple_developer_key_fails_at_startup(fields: dict[str, Any], why: str) -> None:
    values: dict[str, Any] = {
        "id": "apple",
        "client_id": "com.example.web",
        "client_secret": _pem(ec.generate_private_key(ec.SECP256R1())),
        "team_id": "TEAM123456",
        "key_id": "KEY1234567",
    }
    values.update(fields)
    config = OAuthProviderConfig(**values)
    with pytest.raises(ConfigError, match=re.escape(why)):
        Auth(AuthConfig(oauth=(config,)))


@pytest.mark.parametrize(
    ("user", "name"),
    [
        ('{"name": {"firstName": "Ada", "lastName": "Lovelace"}}', "Ada Lovelace"),
        ('{"name": {"firstName": "Ada"}}', "Ada"),
        ('{"name": {}}', None),
        ('{"name": "Ada Lovelace"}', None),
        ("not json", None),
        (None, None),
    ],
)
async def test_apple_posts_the_name_once_as_json(
    provider: ScriptedProvider, site_factory: SiteFactory, user: str | None, name: str | None
) -> None:
    issuer = Issuer(provider)
    issuer.publish()
    config = OAuthProviderConfig(
        id="apple",
        client_id="com.example.web",
        client_secret="a-ready-made-client-secret-jwt",
        authorization_url=provider.url + "/authorize",
        token_url=provider.url + "/token",
        jwks_url=provider.url + "/jwks",
    )
    site = await site_factory(config)
    params = await site.start("apple")
    assert params["response_mode"] == "form_post"
    token = issuer.id_token(
        "com.example.web", params.get("nonce", ""), iss="https://appleid.apple.com"
    )
    provider.answer("/token", {"access_token": "t", "id_token": token})
    form = {"state": params["state"], "code": "c"}
    if user is not None:
        form["user"] = user
    response = await site.client.post(
        f"{PREFIX}/callback/apple", data=form, headers={"origin": "https://appleid.apple.com"}
    )
    assert response.headers["location"] == "/after", response.text
    signed_in = await site.auth.get_user(await site.user_id() or "")
    assert signed_in is not None and signed_in.name == name
    [token_form] = [form for path, form in provider.requests if path == "/token"]
    assert token_form["client_secret"] == "a-ready-made-client-secret-jwt"


async def test_a_sign_in_form_starts_the_flow_with_a_303_to_the_provider(
    provider: ScriptedProvider, site_factory: SiteFactory
) -> None:
    """Without JavaScript the button is a form: the answer is the redirect itself."""
    provider.answer("/token", {"access_token": "discord-token"})
    provider.answer("/users/@me", {**DISCORD_USER, "email": "not an email"})
    site = await site_factory(discord(provider))
    response = await site.client.post(
        f"{PREFIX}/signin",
        data={"provider": "discord", "redirectTo": "/after"},
        headers={"origin": APP},
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(provider.url + "/authorize?")
    state = dict(parse_qsl(urlsplit(location).query))["state"]
    assert await site.come_back("discord", code="c", state=state) == "/after"
    # An address the provider sends that is not an email is not kept.
    user = await site.auth.get_user(await site.user_id() or "")
    assert user is not None and user.email is None and user.name == "Nelly"
