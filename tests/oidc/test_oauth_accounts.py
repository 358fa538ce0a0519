"""Accounts and sessions after an OAuth sign-in: one account per (provider, subject), linking only
by an email verified on both sides, redirectTo checked, forms and per-tab sessions, public
clients, and provider tokens kept (encrypted) only when asked."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select

from authbridge import Auth

from .conftest import (
    OAuthApp,
    OAuthAppFactory,
    github_config,
    github_server,
    oidc_config,
    random_login,
)
from .idp import Idp


async def accounts_of(auth: Auth, user_id: str) -> list[tuple[str, str]]:
    a = auth.store.tables.accounts
    async with auth.store.read() as conn:
        rows = (
            await conn.execute(
                select(a.c.provider, a.c.provider_account_id).where(a.c.user_id == user_id)
            )
        ).all()
    return sorted((str(r.provider), str(r.provider_account_id)) for r in rows)


async def test_signing_in_again_reuses_the_account_of_the_same_subject(
    oauth_app: OAuthApp,
) -> None:
    login = random_login()
    first, second = oauth_app.browser(), oauth_app.browser()
    await first.sign_in(login=login)
    await second.sign_in(login=login)
    user_id = (await first.whoami())["userId"]
    assert (await second.whoami())["userId"] == user_id
    assert await accounts_of(oauth_app.auth, user_id) == [("oidc", login)]


async def test_an_identity_whose_email_belongs_to_an_unverified_password_user_is_not_linked(
    oauth_app: OAuthApp, caplog: pytest.LogCaptureFixture
) -> None:
    login = random_login("ada")
    await oauth_app.auth.sign_up_with_password(f"{login}@example.test", "correct horse battery")
    browser = oauth_app.browser()
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        response = await browser.sign_in(login=login)
    assert response.headers["location"] == "/signin?error=AccountNotLinked"
    assert "not verified on the user" in caplog.text
    assert (await browser.whoami())["userId"] is None


async def test_an_unverified_provider_email_never_links_and_is_not_given_to_a_new_user(
    oauth_app: OAuthApp,
) -> None:
    login = random_login("unverified")
    browser = oauth_app.browser()
    response = await browser.sign_in(login=login)
    assert response.headers["location"] == "/after"
    user = await oauth_app.auth.get_user((await browser.whoami())["userId"])
    assert user is not None and user.email is None and user.name == f"Test {login}"


async def test_a_verified_email_links_a_second_provider_to_a_verified_user(
    oauth_app_factory: OAuthAppFactory, idp: Idp
) -> None:
    login = random_login("octo")
    async with github_server() as github:
        # GitHub's primary address for <login> is <login>@example.test, like the IdP's.
        app = await oauth_app_factory(oidc_config(idp), github_config(github))
        browser = app.browser()
        await browser.sign_in("oidc", login=login)
        user_id = (await browser.whoami())["userId"]
        other = app.browser()
        response = await other.callback(
            await drive_github(other, await other.start("github"), login)
        )
        assert response.headers["location"] == "/after"
        assert (await other.whoami())["userId"] == user_id
    providers = [p for p, _ in await accounts_of(app.auth, user_id)]
    assert providers == ["github", "oidc"]


async def drive_github(browser: Any, url: str, login: str, *, allow: bool = True) -> Any:
    """Authorize at the GitHub-shaped server: its page's form, then its redirect."""
    from .conftest import CallbackRequest, parse_forms

    page = await browser.idp.get(url)
    assert page.status_code == 200, page.text
    form = parse_forms(page.text)[0]
    fields = {**form["fields"], "login": login, "decision": "allow" if allow else "deny"}
    answer = await browser.idp.post(str(page.url.join(form["action"])), data=fields)
    assert answer.status_code == 302
    return CallbackRequest("GET", answer.headers["location"])


async def test_the_github_preset_signs_in_with_the_verified_primary_email(
    oauth_app_factory: OAuthAppFactory,
) -> None:
    login = random_login("gh")
    async with github_server() as github:
        app = await oauth_app_factory(github_config(github))
        browser = app.browser()
        url = await browser.start("github", "/dash")
        assert url.startswith(github.url + "/login/oauth/authorize?")
        assert "nonce=" not in url and "code_challenge_method=S256" in url
        response = await browser.callback(await drive_github(browser, url, login))
        assert response.headers["location"] == "/dash"
        user = await app.auth.get_user((await browser.whoami())["userId"])
        assert user is not None
        assert user.email == f"{login}@example.test"
        assert user.name == f"Octo {login}"
        assert user.data["email_verified_at"] is not None
        assert github.requests["/user/emails"] == 1


async def test_the_github_preset_maps_a_denial_and_a_replayed_code(
    oauth_app_factory: OAuthAppFactory,
) -> None:
    async with github_server() as github:
        app = await oauth_app_factory(github_config(github))
        browser = app.browser()
        denied = await drive_github(browser, await browser.start("github"), "x", allow=False)
        response = await browser.callback(denied)
        assert response.headers["location"] == "/signin?error=OAuthDenied"
        cb = await drive_github(browser, await browser.start("github"), "y")
        assert (await browser.callback(cb)).headers["location"] == "/after"
        fresh = await browser.start("github")
        state = fresh.split("state=")[1].split("&")[0]
        replay = cb.with_params(state=state)
        response = await browser.callback(replay)
        assert response.headers["location"] == "/signin?error=OAuthProviderError"


@pytest.mark.parametrize(
    "target", ["https://evil.example/x", "//evil.example/x", "/\\evil", "javascript:alert(1)"]
)
async def test_an_unsafe_redirect_to_lands_on_the_home_page(
    oauth_app: OAuthApp, target: str
) -> None:
    browser = oauth_app.browser()
    response = await browser.sign_in(login=random_login(), redirect_to=target)
    assert response.headers["location"] == "/"


async def test_the_form_start_answers_a_303_to_the_idp_and_carries_redirect_to(
    oauth_app: OAuthApp,
) -> None:
    browser = oauth_app.browser()
    url = await browser.start(redirect_to="/notes", form=True)
    assert url.startswith(oauth_app.idp.issuer + "/auth?")
    response = await browser.callback(await browser.authorize(url, random_login()))
    assert response.headers["location"] == "/notes"


async def test_the_flow_cookie_is_http_only_lax_short_lived_and_holds_no_state(
    oauth_app: OAuthApp,
) -> None:
    browser = oauth_app.browser()
    response = await browser.app.post("/api/auth/signin", json={"provider": "oidc", "params": {}})
    (cookie,) = [
        h
        for h in response.headers.get_list("set-cookie")
        if h.startswith(("authbridge.oauth.", "__Host-authbridge.oauth."))
    ]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=600" in cookie
    state = response.json()["redirect"].split("state=")[1].split("&")[0]
    assert state not in cookie


async def test_per_tab_the_session_lands_in_the_tab_that_started_the_flow(
    oauth_app_factory: OAuthAppFactory, idp: Idp
) -> None:
    app = await oauth_app_factory(oidc_config(idp), session_sharing="per_tab")
    tab_a = app.browser(tab="tabAAAAAA1")
    response = await tab_a.sign_in(login=random_login())
    assert response.headers["location"] == "/after"
    assert any(
        h.startswith("__Host-authbridge.jwt.tabAAAAAA1=")
        for h in response.headers.get_list("set-cookie")
    )
    assert (await tab_a.whoami())["userId"] is not None
    # Another tab of the same browser (same cookie jar) stays signed out.
    tab_a.tab = "tabBBBBBB2"
    assert (await tab_a.whoami())["userId"] is None


async def test_a_public_client_signs_in_with_pkce_alone(
    oauth_app_factory: OAuthAppFactory, idp: Idp
) -> None:
    app = await oauth_app_factory(oidc_config(idp, "oidc-public"))
    browser = app.browser()
    response = await browser.sign_in("oidc-public", login=random_login())
    assert response.headers["location"] == "/after"
    assert (await browser.whoami())["userId"] is not None


async def test_provider_tokens_are_not_kept_unless_asked(oauth_app: OAuthApp) -> None:
    browser = oauth_app.browser()
    await browser.sign_in(login=random_login())
    user_id = (await browser.whoami())["userId"]
    assert await oauth_app.auth.provider_access_token(user_id, "oidc") is None
    async with oauth_app.auth.store.read() as conn:
        t = oauth_app.auth.store.tables.provider_tokens
        assert (await conn.execute(select(t))).all() == []


async def test_kept_provider_tokens_are_encrypted_and_refreshed_when_expired(
    oauth_app_factory: OAuthAppFactory, idp: Idp, clock: Any
) -> None:
    app = await oauth_app_factory(oidc_config(idp, store_provider_tokens=True))
    browser = app.browser()
    await browser.sign_in(login=random_login())
    user_id = (await browser.whoami())["userId"]
    token = await app.auth.provider_access_token(user_id, "oidc")
    assert token
    t = app.auth.store.tables.provider_tokens
    async with app.auth.store.read() as conn:
        (row,) = (await conn.execute(select(t))).all()
    assert token not in row.access_token and row.refresh_token is not None
    # The IdP's userinfo accepts it: a real, usable token.
    answer = await browser.idp.get("/me", headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert await app.auth.provider_access_token(user_id, "oidc") == token
    clock.advance(3600 - 59)  # within a minute of its expiry: refreshed
    fresh = await app.auth.provider_access_token(user_id, "oidc")
    assert fresh and fresh != token
    answer = await browser.idp.get("/me", headers={"authorization": f"Bearer {fresh}"})
    assert answer.status_code == 200
    assert await app.auth.provider_access_token(user_id, "oidc") == fresh


async def test_an_unverified_provider_email_does_not_link_even_to_a_verified_user(
    oauth_app: OAuthApp, caplog: pytest.LogCaptureFixture
) -> None:
    login = random_login("unverified")
    auth = oauth_app.auth
    result = await auth.sign_up_with_password(f"{login}@example.test", "correct horse battery")
    users = auth.store.tables.users
    async with auth.store.transaction() as conn:
        await conn.execute(
            users.update()
            .where(users.c.id == result.user_id)
            .values(email_verified_at=auth.clock())
        )
    browser = oauth_app.browser()
    with caplog.at_level(logging.WARNING, logger="authbridge.oauth"):
        response = await browser.sign_in(login=login)
    assert response.headers["location"] == "/signin?error=AccountNotLinked"
    assert "not verified on the provider" in caplog.text
    assert await accounts_of(auth, result.user_id) == [("password", f"{login}@example.test")]


async def test_a_client_starting_too_many_flows_is_rate_limited(
    oauth_app_factory: OAuthAppFactory, idp: Idp
) -> None:
    from authbridge import RateLimitConfig

    app = await oauth_app_factory(oidc_config(idp), rate_limit=RateLimitConfig(ip_attempts=3))
    browser = app.browser()
    for _ in range(3):
        await browser.start()
    response = await browser.app.post("/api/auth/signin", json={"provider": "oidc", "params": {}})
    assert response.status_code == 429
    assert response.json() == {"error": "TooManyAttempts"}
    assert int(response.headers["retry-after"]) > 0
