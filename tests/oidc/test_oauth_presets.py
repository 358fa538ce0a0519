"""The presets: fixed endpoints (overridable), Microsoft's multi-tenant issuer, Apple's form_post
and signed client secret — driven through the real IdP with endpoint overrides and a token proxy
that re-signs ID tokens as the real provider would (with the IdP's own key)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authbridge.config import OAuthProviderConfig

from .conftest import (
    CLIENT_SECRET,
    CONFIDENTIAL,
    OAuthAppFactory,
    claims_of,
    random_login,
    token_proxy,
)
from .idp import Idp

TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
MICROSOFT_ISS = f"https://login.microsoftonline.com/{TENANT}/v2.0"


def overrides(idp: Idp, token_url: str) -> dict[str, Any]:
    return {
        "client_id": CONFIDENTIAL + "-post",
        "client_secret": CLIENT_SECRET,
        "authorization_url": idp.issuer + "/auth",
        "token_url": token_url,
        "userinfo_url": idp.issuer + "/me",
        "jwks_url": idp.issuer + "/jwks",
    }


def as_issued_by(idp: Idp, **claims: Any) -> Any:
    def rewrite(document: dict[str, Any]) -> dict[str, Any]:
        return {**document, "id_token": idp.sign({**claims_of(document["id_token"]), **claims})}

    return rewrite


@pytest.mark.parametrize(
    ("tid", "iss", "outcome"),
    [
        (TENANT, MICROSOFT_ISS, "/after"),
        ("other-tenant", MICROSOFT_ISS, "/signin?error=OAuthProviderError"),
        (None, MICROSOFT_ISS, "/signin?error=OAuthProviderError"),
        (
            TENANT,
            "https://login.microsoftonline.com/common/v2.0",
            "/signin?error=OAuthProviderError",
        ),
    ],
)
async def test_microsoft_accepts_the_issuer_of_the_tenant_the_token_names(
    oauth_app_factory: OAuthAppFactory, idp: Idp, tid: str | None, iss: str, outcome: str
) -> None:
    async with token_proxy(idp) as proxy:
        config = OAuthProviderConfig(id="microsoft", **overrides(idp, proxy.url))
        app = await oauth_app_factory(config)
        proxy.rewrite = as_issued_by(idp, iss=iss, **({"tid": tid} if tid else {}))
        browser = app.browser()
        cb = await browser.authorize(await browser.start("microsoft"), random_login("ms"))
        # Entra sends no RFC 9207 iss (the test IdP does: it is not Entra).
        response = await browser.callback(cb.with_params(iss=None))
        assert response.headers["location"] == outcome


async def test_apple_comes_back_by_form_post_with_a_same_site_none_cookie_and_a_signed_secret(
    oauth_app_factory: OAuthAppFactory, idp: Idp
) -> None:
    developer_key = ec.generate_private_key(ec.SECP256R1())
    pem = developer_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    seen: list[dict[str, Any]] = []

    def check_secret(form: dict[str, str]) -> dict[str, str]:
        secret = form["client_secret"]
        header = jwt.get_unverified_header(secret)
        claims = jwt.decode(
            secret,
            developer_key.public_key(),
            algorithms=["ES256"],
            audience="https://appleid.apple.com",
        )
        seen.append({"header": header, "claims": claims})
        return {**form, "client_secret": CLIENT_SECRET}  # what the test IdP knows

    async with token_proxy(idp) as proxy:
        config = OAuthProviderConfig(
            id="apple",
            **{**overrides(idp, proxy.url), "client_secret": pem, "userinfo_url": None},
            team_id="TEAM123456",
            key_id="KEY1234567",
            # The test IdP wants "openid" with a nonce; Apple itself takes "name email".
            scopes=("openid", "email"),
        )
        app = await oauth_app_factory(config)
        proxy.rewrite_request = check_secret
        login = random_login("apple")
        relay = f"{login}@privaterelay.appleid.com"
        # Apple puts the (relay) address in the ID token, email_verified as a string.
        proxy.rewrite = as_issued_by(
            idp, iss="https://appleid.apple.com", email=relay, email_verified="true"
        )
        browser = app.browser()
        start = await browser.app.post(
            "/api/auth/signin", json={"provider": "apple", "params": {"redirectTo": "/apple"}}
        )
        (cookie,) = [h for h in start.headers.get_list("set-cookie") if "authbridge.oauth." in h]
        assert "SameSite=None" in cookie and "Secure" in cookie and "HttpOnly" in cookie
        url = start.json()["redirect"]
        assert dict(parse_qsl(urlsplit(url).query))["response_mode"] == "form_post"
        cb = await browser.authorize(url, login)
        assert cb.method == "POST"
        form = {**cb.form, "user": '{"name": {"firstName": "Ada", "lastName": "Apple"}}'}
        form.pop("iss", None)
        from .conftest import CallbackRequest

        response = await browser.callback(CallbackRequest("POST", cb.url, form))
        assert response.headers["location"] == "/apple", response.text
        user = await app.auth.get_user((await browser.whoami())["userId"])
        assert user is not None and user.email == relay and user.name == "Ada Apple"
    (secret,) = seen
    assert secret["header"]["kid"] == "KEY1234567"
    assert secret["claims"]["iss"] == "TEAM123456"
    assert secret["claims"]["sub"] == CONFIDENTIAL + "-post"
    assert secret["claims"]["exp"] - time.time() < 600


async def test_a_form_post_callback_from_another_site_without_the_cookie_is_refused(
    oauth_app_factory: OAuthAppFactory, idp: Idp
) -> None:
    async with token_proxy(idp) as proxy:
        config = OAuthProviderConfig(
            id="apple", **overrides(idp, proxy.url), scopes=("openid", "email")
        )
        app = await oauth_app_factory(config)
        browser = app.browser()
        cb = await browser.authorize(await browser.start("apple"), random_login())
        browser.app.cookies.clear()
        response = await browser.callback(cb)
        assert response.headers["location"] == "/signin?error=OAuthStateInvalid"


@pytest.mark.parametrize(
    ("provider", "host", "scope"),
    [
        ("github", "github.com", "read:user user:email"),
        ("google", "accounts.google.com", "openid email profile"),
        ("microsoft", "login.microsoftonline.com", "openid email profile"),
        ("gitlab", "gitlab.com", "openid email profile"),
        ("discord", "discord.com", "identify email"),
        ("apple", "appleid.apple.com", "name email"),
    ],
)
async def test_each_preset_sends_the_browser_to_its_own_authorization_endpoint(
    oauth_app_factory: OAuthAppFactory, provider: str, host: str, scope: str
) -> None:
    app = await oauth_app_factory(OAuthProviderConfig(id=provider, client_id="cid"))
    url = await app.browser().start(provider)
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    assert parts.scheme == "https" and parts.hostname == host
    assert query["scope"] == scope
    assert query["redirect_uri"] == f"https://localhost/api/auth/callback/{provider}"
    assert query["code_challenge_method"] == "S256"


def test_a_generic_provider_needs_an_issuer() -> None:
    from authbridge.errors import ConfigError
    from authbridge.providers.oauth import OAuthProvider

    with pytest.raises(ConfigError, match="AUTHBRIDGE_OAUTH_MY_IDP_ISSUER"):
        OAuthProvider(OAuthProviderConfig(id="my-idp", client_id="x"))
