"""An OAuth sign-in of a user with a confirmed TOTP secret is held for the code, exactly like a
password sign-in: the callback sends the browser to the sign-in page with ``?factor=totp``, the
pending sign-in lives in the same signed cookie, ``signIn("totp", ...)`` completes it."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt as pyjwt
import pyotp

from .conftest import PREFIX, Browser, OAuthAppFactory, oidc_config, random_login
from .idp import Idp

JSON = {"content-type": "application/json"}


def tab_headers(browser: Browser) -> dict[str, str]:
    return {"x-authbridge-tab": browser.tab} if browser.tab else {}


def code_at(secret: str, clock: Any, steps: int = 0) -> str:
    return pyotp.TOTP(secret).generate_otp(int(clock.now.timestamp()) // 30 + steps)


async def enrol(browser: Browser, clock: Any) -> str:
    headers = {**JSON, **tab_headers(browser)}
    started = await browser.app.post(f"{PREFIX}/totp/enroll", headers=headers)
    assert started.status_code == 200, started.text
    secret: str = started.json()["secret"]
    confirmed = await browser.app.post(
        f"{PREFIX}/totp/confirm", json={"code": code_at(secret, clock)}, headers=headers
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret


async def sign_out(browser: Browser) -> None:
    headers = {**JSON, **tab_headers(browser)}
    assert (await browser.app.post(f"{PREFIX}/signout", headers=headers)).status_code == 200


async def totp(browser: Browser, code: str) -> httpx.Response:
    return await browser.app.post(
        f"{PREFIX}/signin",
        json={"provider": "totp", "params": {"code": code}},
        headers=tab_headers(browser),
    )


async def amr(browser: Browser) -> list[str]:
    headers = {**JSON, **tab_headers(browser)}
    token = (await browser.app.post(f"{PREFIX}/token", headers=headers)).json()["token"]
    claims = pyjwt.decode(token, options={"verify_signature": False})
    return list(claims["amr"])


def assert_held(response: httpx.Response, cookie: str = "__Host-authbridge.mfa") -> None:
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert location.path == "/signin"
    assert dict(parse_qsl(location.query)) == {"factor": "totp"}
    set_cookie = response.headers.get_list("set-cookie")
    assert any(h.startswith(cookie + "=") and "HttpOnly" in h for h in set_cookie), set_cookie
    assert not any(h.startswith("__Host-authbridge.jwt") for h in set_cookie)


async def test_an_oauth_sign_in_waits_for_the_totp_code_then_lands_where_it_started(
    oauth_app_factory: OAuthAppFactory, idp: Idp, clock: Any
) -> None:
    app = await oauth_app_factory(oidc_config(idp), totp=True)
    browser = app.browser()
    login = random_login()
    first = await browser.sign_in(login=login)
    assert first.headers["location"] == "/after"  # no second factor yet: signed in
    user_id = (await browser.whoami())["userId"]
    assert await amr(browser) == ["oauth"]
    secret = await enrol(browser, clock)
    await sign_out(browser)

    held = await browser.sign_in(login=login, redirect_to="/notes")
    assert_held(held)
    assert (await browser.whoami())["userId"] is None  # no session until the code
    wrong = await totp(browser, "000000" if code_at(secret, clock, 1) != "000000" else "111111")
    assert wrong.status_code == 400 and wrong.json() == {"error": "InvalidCode"}
    # The built-in page's form: back to where the OAuth flow started.
    done = await browser.app.post(
        f"{PREFIX}/signin", data={"provider": "totp", "code": code_at(secret, clock, 1)}
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/notes"
    assert (await browser.whoami())["userId"] == user_id
    assert await amr(browser) == ["oauth", "totp", "mfa"]


async def test_a_held_oauth_sign_in_takes_a_recovery_code_and_expires_like_a_password_one(
    oauth_app_factory: OAuthAppFactory, idp: Idp, clock: Any
) -> None:
    app = await oauth_app_factory(oidc_config(idp), totp=True)
    browser = app.browser()
    login = random_login()
    await browser.sign_in(login=login)
    started = await browser.app.post(f"{PREFIX}/totp/enroll", headers=JSON)
    secret = started.json()["secret"]
    confirmed = await browser.app.post(
        f"{PREFIX}/totp/confirm", json={"code": code_at(secret, clock)}, headers=JSON
    )
    recovery = confirmed.json()["recoveryCodes"][0]
    await sign_out(browser)

    assert_held(await browser.sign_in(login=login))
    clock.advance(5 * 60 + 1)  # the pending sign-in lives five minutes
    late = await browser.app.post(
        f"{PREFIX}/signin", json={"provider": "totp", "params": {"recoveryCode": recovery}}
    )
    assert late.status_code == 400 and late.json() == {"error": "InvalidCode"}

    assert_held(await browser.sign_in(login=login))
    used = await browser.app.post(
        f"{PREFIX}/signin", json={"provider": "totp", "params": {"recoveryCode": recovery}}
    )
    assert used.status_code == 200 and used.json()["signedIn"] is True
    assert await amr(browser) == ["oauth", "recovery", "mfa"]


async def test_per_tab_the_held_sign_in_belongs_to_the_tab_that_started_the_flow(
    oauth_app_factory: OAuthAppFactory, idp: Idp, clock: Any
) -> None:
    app = await oauth_app_factory(oidc_config(idp), totp=True, session_sharing="per_tab")
    browser = app.browser(tab="tabAAAAAA1")
    login = random_login()
    await browser.sign_in(login=login)
    secret = await enrol(browser, clock)
    await sign_out(browser)

    answer = await browser.authorize(await browser.start(), login)
    # A login at the IdP takes longer than the ten-second tab hint lives: the callback names
    # no tab, the flow does.
    browser.app.cookies.delete("authbridge.tab")
    held = await browser.callback(answer)
    assert_held(held, cookie="__Host-authbridge.mfa.tabAAAAAA1")
    # Another tab of the same browser has no pending sign-in to complete.
    browser.tab = "tabBBBBBB2"
    other = await totp(browser, code_at(secret, clock, 1))
    assert other.status_code == 400 and other.json() == {"error": "InvalidCode"}
    assert (await browser.whoami())["userId"] is None
    browser.tab = "tabAAAAAA1"
    done = await totp(browser, code_at(secret, clock, 1))
    assert done.status_code == 200, done.text
    assert (await browser.whoami())["userId"] == done.json()["userId"]


async def test_linking_an_identity_is_held_too_and_keeps_the_current_session_meanwhile(
    oauth_app_factory: OAuthAppFactory, idp: Idp, clock: Any
) -> None:
    app = await oauth_app_factory(oidc_config(idp), totp=True)
    browser = app.browser()
    signed_up = await browser.app.post(
        f"{PREFIX}/signin",
        json={
            "provider": "password",
            "params": {
                "flow": "signUp",
                "email": f"{random_login()}@example.com",
                "password": "correct horse battery staple",
            },
        },
    )
    user_id = signed_up.json()["userId"]
    secret = await enrol(browser, clock)
    started = await browser.app.post(
        f"{PREFIX}/account/link", json={"provider": "oidc", "redirectTo": "/account"}
    )
    assert started.status_code == 200, started.text
    held = await browser.callback(
        await browser.authorize(started.json()["redirect"], random_login())
    )
    assert_held(held)
    assert (await browser.whoami())["userId"] == user_id  # still the password session
    methods = (await browser.app.get(f"{PREFIX}/account", headers=JSON)).json()["methods"]
    assert {m["provider"] for m in methods} == {"password", "oidc"}
    done = await totp(browser, code_at(secret, clock, 1))
    assert done.status_code == 200 and done.json()["userId"] == user_id
    assert await amr(browser) == ["oauth", "totp", "mfa"]
