"""Every attack and fault of issue 14, each refused with its §17.3 code, a log line saying why,
and no session: against the real IdP, in process (the app through ASGI, the IdP over HTTP)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from authbridge import Auth
from tests.toolkit.servers import refused_url

from .conftest import (
    Browser,
    CallbackRequest,
    OAuthApp,
    OAuthAppFactory,
    claims_of,
    oidc_config,
    token_proxy,
)
from .idp import Idp

SIGNIN = "/signin?error="


async def count(auth: Auth, table: str) -> int:
    t = getattr(auth.store.tables, table)
    async with auth.store.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(t))).scalar_one())


def refused(response: Any, code: str) -> None:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == SIGNIN + code
    assert not any(
        h.startswith(("authbridge.jwt=", "__Host-authbridge.jwt=")) and "Max-Age=0" not in h
        for h in response.headers.get_list("set-cookie")
    )


def state_of(authorization_url: str) -> str:
    return dict(parse_qsl(urlsplit(authorization_url).query))["state"]


async def signed_out(browser: Browser) -> bool:
    return (await browser.whoami())["userId"] is None


def resign(
    idp: Idp, *, key: Any = None, headers: dict[str, Any] | None = None, **changes: Any
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A token-response rewrite: the ID token's claims changed (``None`` deletes one) and signed
    again, by the IdP's own key unless ``key`` is given (``"none"``: unsigned)."""

    def rewrite(document: dict[str, Any]) -> dict[str, Any]:
        claims = claims_of(document["id_token"])
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        if key == "none":
            token = jwt.encode(claims, "", algorithm="none")
        elif key is not None:
            token = jwt.encode(claims, key, algorithm="RS256", headers=headers or {})
        else:
            token = idp.sign(claims, headers)
        return {**document, "id_token": token}

    return rewrite


# -- state -----------------------------------------------------------------------------------


async def test_a_callback_without_state_is_refused(
    oauth_app: OAuthApp, caplog: pytest.LogCaptureFixture
) -> None:
    browser = oauth_app.browser()
    cb = await browser.authorize(await browser.start())
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        refused(await browser.callback(cb.with_params(state=None)), "OAuthStateInvalid")
    assert "without a state" in caplog.text
    assert await signed_out(browser)


async def test_a_state_swapped_in_from_another_browser_is_refused(
    oauth_app: OAuthApp, caplog: pytest.LogCaptureFixture
) -> None:
    """Login CSRF: the attacker completes their own flow and feeds the victim the callback."""
    victim, attacker = oauth_app.browser(), oauth_app.browser()
    await victim.start()
    attackers_callback = await attacker.authorize(await attacker.start(), "mallory")
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        refused(await victim.callback(attackers_callback), "OAuthStateInvalid")
    assert "not started by this browser" in caplog.text
    assert await signed_out(victim)
    assert await count(oauth_app.auth, "users") == 0


async def test_a_state_from_another_of_my_flows_is_refused_when_the_cookie_was_lost(
    oauth_app: OAuthApp,
) -> None:
    browser = oauth_app.browser()
    cb = await browser.authorize(await browser.start())
    browser.app.cookies.clear()
    refused(await browser.callback(cb), "OAuthStateInvalid")


async def test_a_replayed_callback_is_refused(oauth_app: OAuthApp) -> None:
    browser = oauth_app.browser()
    cb = await browser.authorize(await browser.start())
    first = await browser.callback(cb)
    assert first.headers["location"] == "/after"
    refused(await browser.callback(cb), "OAuthStateInvalid")
    assert await count(oauth_app.auth, "sessions") == 1


async def test_a_flow_that_took_too_long_is_refused(oauth_app: OAuthApp, clock: Any) -> None:
    browser = oauth_app.browser()
    cb = await browser.authorize(await browser.start())
    clock.advance(600)
    refused(await browser.callback(cb), "OAuthStateInvalid")


# -- code and PKCE ---------------------------------------------------------------------------


async def test_a_replayed_code_is_refused_by_the_idp(
    oauth_app: OAuthApp, caplog: pytest.LogCaptureFixture
) -> None:
    browser = oauth_app.browser()
    cb = await browser.authorize(await browser.start())
    await browser.callback(cb)
    # A new flow of the same browser carries the old code back.
    fresh = await browser.start()
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        refused(await browser.callback(cb.with_params(state=state_of(fresh))), "OAuthProviderError")
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("authbridge"))
    assert "code exchange" in ours and "invalid_grant" in ours
    assert cb.params["code"] not in ours and cb.params["state"] not in ours


async def test_a_code_with_the_wrong_pkce_verifier_is_refused(
    oauth_app: OAuthApp, caplog: pytest.LogCaptureFixture
) -> None:
    """A code stolen from one flow and injected into another (its verifier does not match)."""
    browser = oauth_app.browser()
    first = await browser.start()
    second = await browser.start()
    cb_first = await browser.authorize(first)
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        response = await browser.callback(cb_first.with_params(state=state_of(second)))
    refused(response, "OAuthProviderError")
    assert "invalid_grant" in caplog.text
    assert await signed_out(browser)


# -- the ID token ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"nonce": "another-flows-nonce"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"iss": "http://127.0.0.1:1"}, "invalid_issuer"),
        ({"aud": "another-client"}, "invalid_audience"),
        ({"aud": ["confidential-app", "other"]}, "azp"),
        ({"azp": "other"}, "azp"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"iat": int(time.time()) + 3600}, "not_yet_valid"),
    ],
)
async def test_an_id_token_failing_a_check_is_refused(
    oauth_app_factory: OAuthAppFactory,
    idp: Idp,
    caplog: pytest.LogCaptureFixture,
    changes: dict[str, Any],
    why: str,
) -> None:
    async with token_proxy(idp) as proxy:
        app = await oauth_app_factory(oidc_config(idp, token_url=proxy.url))
        proxy.rewrite = resign(idp, **changes)
        browser = app.browser()
        cb = await browser.authorize(await browser.start())
        with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
            refused(await browser.callback(cb), "OAuthProviderError")
    assert why in caplog.text
    assert await count(app.auth, "users") == 0


async def test_an_unsigned_id_token_is_refused_without_fetching_keys(
    oauth_app_factory: OAuthAppFactory, idp: Idp, caplog: pytest.LogCaptureFixture
) -> None:
    async with token_proxy(idp) as proxy:
        app = await oauth_app_factory(oidc_config(idp, token_url=proxy.url))
        proxy.rewrite = resign(idp, key="none")
        browser = app.browser()
        cb = await browser.authorize(await browser.start())
        with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
            refused(await browser.callback(cb), "OAuthProviderError")
    assert "invalid_algorithm" in caplog.text
    jwks = app.provider().jwks
    assert jwks is not None and jwks.fetch_count == 0


async def test_an_id_token_signed_by_an_unknown_key_is_refused(
    oauth_app_factory: OAuthAppFactory, idp: Idp, caplog: pytest.LogCaptureFixture
) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with token_proxy(idp) as proxy:
        app = await oauth_app_factory(oidc_config(idp, token_url=proxy.url))
        proxy.rewrite = resign(idp, key=forger, headers={"kid": "forged"})
        browser = app.browser()
        cb = await browser.authorize(await browser.start())
        with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
            refused(await browser.callback(cb), "OAuthProviderError")
        # The IdP's own kid with the forger's signature.
        proxy.rewrite = resign(idp, key=forger, headers={"kid": idp.kid})
        cb = await browser.authorize(await browser.start())
        with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
            refused(await browser.callback(cb), "OAuthProviderError")
    assert "unknown_key" in caplog.text and "invalid_signature" in caplog.text


# -- mix-up (RFC 9207) -----------------------------------------------------------------------


async def test_an_authorization_response_from_another_issuer_is_refused(
    oauth_app: OAuthApp, caplog: pytest.LogCaptureFixture
) -> None:
    browser = oauth_app.browser()
    cb = await browser.authorize(await browser.start())
    assert cb.params["iss"] == oauth_app.idp.issuer
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        refused(
            await browser.callback(cb.with_params(iss="https://attacker.example")),
            "OAuthProviderError",
        )
    assert "mix-up" in caplog.text


async def test_a_missing_iss_is_refused_when_the_idp_promises_it(oauth_app: OAuthApp) -> None:
    browser = oauth_app.browser()
    cb = await browser.authorize(await browser.start())
    refused(await browser.callback(cb.with_params(iss=None)), "OAuthProviderError")


# -- the user and the IdP --------------------------------------------------------------------


async def test_a_user_who_denies_consent_lands_on_the_sign_in_page_with_oauth_denied(
    oauth_app: OAuthApp, caplog: pytest.LogCaptureFixture
) -> None:
    browser = oauth_app.browser()
    cb = await browser.authorize(await browser.start(), deny=True)
    assert cb.params["error"] == "access_denied"
    with caplog.at_level(logging.INFO, logger="authbridge.oauth"):
        refused(await browser.callback(cb), "OAuthDenied")
    assert "denied" in caplog.text


async def test_an_error_from_the_idp_is_a_provider_error(oauth_app: OAuthApp) -> None:
    browser = oauth_app.browser()
    cb = await browser.authorize(await browser.start())
    bad = cb.with_params(code=None, error="server_error", error_description="boom\n\x00")
    refused(await browser.callback(bad), "OAuthProviderError")


async def test_an_idp_that_is_down_fails_the_start_with_a_provider_error(
    oauth_app_factory: OAuthAppFactory, idp: Idp
) -> None:
    app = await oauth_app_factory(oidc_config(idp, issuer=refused_url()), timeout=2)
    browser = app.browser()
    started = time.monotonic()
    response = await browser.app.post(
        "/api/auth/signin", json={"provider": "oidc", "params": {"redirectTo": "/x"}}
    )
    assert response.status_code == 502
    assert response.json() == {"error": "OAuthProviderError"}
    form = await browser.app.post("/api/auth/signin", data={"provider": "oidc"})
    assert form.status_code == 303
    assert form.headers["location"] == SIGNIN + "OAuthProviderError"
    assert time.monotonic() - started < 5


async def test_a_slow_token_endpoint_is_given_up_on_within_the_timeout(
    oauth_app_factory: OAuthAppFactory, idp: Idp, caplog: pytest.LogCaptureFixture
) -> None:
    async with token_proxy(idp) as proxy:
        app = await oauth_app_factory(oidc_config(idp, token_url=proxy.url), timeout=0.5)
        proxy.delay_s = 5
        browser = app.browser()
        cb = await browser.authorize(await browser.start())
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
            refused(await browser.callback(cb), "OAuthProviderError")
        assert time.monotonic() - started < 2
    assert "no answer within" in caplog.text


# -- concurrency -----------------------------------------------------------------------------


async def test_two_flows_started_in_two_tabs_at_once_both_complete(oauth_app: OAuthApp) -> None:
    browser = oauth_app.browser()
    url_a = await browser.start(redirect_to="/from-tab-a")
    url_b = await browser.start(redirect_to="/from-tab-b")
    cb_a = await browser.authorize(url_a, "alice")
    cb_b = await browser.authorize(url_b, "alice")
    second = await browser.callback(cb_b)
    first = await browser.callback(cb_a)
    assert second.headers["location"] == "/from-tab-b"
    assert first.headers["location"] == "/from-tab-a"
    assert (await browser.whoami())["userId"] is not None
    assert await count(oauth_app.auth, "users") == 1
    assert await count(oauth_app.auth, "verifiers") == 0


async def test_a_callback_for_a_get_only_provider_refuses_post(oauth_app: OAuthApp) -> None:
    browser = oauth_app.browser()
    cb = await browser.authorize(await browser.start())
    response = await browser.callback(CallbackRequest("POST", cb.url.split("?")[0], cb.params))
    assert response.status_code == 405
