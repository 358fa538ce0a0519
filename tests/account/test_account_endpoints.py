"""The account endpoints: overview, password change, unlink, delete; recent authentication,
same-origin checks, rate limits and the auth events they record."""

from __future__ import annotations

from datetime import timedelta

import pytest

from authbridge import AuthError
from tests.toolkit.engines import PASSWORD

from .conftest import BASE, FORM, Demo

NEW_PASSWORD = "a brand new passphrase"
STALE = timedelta(minutes=5, seconds=1)


async def test_account_shows_the_user_masked_methods_and_session_count(demo: Demo) -> None:
    browser = demo.browser()
    signed = await demo.sign_up(browser, "alice@example.com")
    await demo.sign_in(
        demo.browser(), "password", flow="signIn", email="alice@example.com", password=PASSWORD
    )
    response = await browser.get("/api/auth/account")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"
    body = response.json()
    assert body["user"]["id"] == signed["userId"]
    assert body["user"]["email"] == "alice@example.com"
    assert body["user"]["isAnonymous"] is False
    assert body["methods"] == [{"provider": "password", "identifier": "a***@example.com"}]
    assert body["sessions"] == 2


async def test_account_needs_a_session(demo: Demo) -> None:
    response = await demo.browser().get("/api/auth/account")
    assert (response.status_code, response.json()) == (401, {"error": "Unauthenticated"})


async def test_changing_the_password_ends_other_sessions_and_keeps_this_one(demo: Demo) -> None:
    browser, elsewhere = demo.browser(), demo.browser()
    await demo.sign_up(browser, "bob@example.com")
    other = await demo.sign_in(
        elsewhere, "password", flow="signIn", email="bob@example.com", password=PASSWORD
    )
    demo.clock.advance(STALE)  # the current password is the proof; no fresh sign-in needed
    response = await browser.post(
        "/api/auth/account/password",
        json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
    )
    assert response.json() == {"changed": True}
    assert await demo.app.auth.get_session(other["sessionId"]) is None
    assert (await browser.get("/api/auth/account")).status_code == 200
    old = await demo.sign_in(
        demo.browser(), "password", flow="signIn", email="bob@example.com", password=PASSWORD
    )
    assert old == {"error": "InvalidCredentials"}
    new = await demo.sign_in(
        demo.browser(), "password", flow="signIn", email="bob@example.com", password=NEW_PASSWORD
    )
    assert new["signedIn"] is True
    [changed] = [e for e in demo.events if e.kind == "password_changed"]
    assert changed.user_id == new["userId"] and changed.ip is not None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"currentPassword": "wrong horse", "newPassword": NEW_PASSWORD}, "InvalidCredentials"),
        ({"currentPassword": PASSWORD, "newPassword": "short"}, "InvalidPassword"),
        ({"newPassword": NEW_PASSWORD}, "InvalidParams"),
    ],
)
async def test_a_password_change_without_the_current_password_is_refused(
    demo: Demo, body: dict[str, str], code: str
) -> None:
    browser = demo.browser()
    await demo.sign_up(browser, "carol@example.com")
    response = await browser.post("/api/auth/account/password", json=body)
    assert response.json()["error"] == code


async def test_wrong_current_passwords_are_rate_limited(demo: Demo) -> None:
    browser = demo.browser()
    await demo.sign_up(browser, "dora@example.com")
    codes = []
    for _ in range(12):
        response = await browser.post(
            "/api/auth/account/password",
            json={"currentPassword": "not it at all", "newPassword": NEW_PASSWORD},
        )
        codes.append(response.json()["error"])
    assert codes[0] == "InvalidCredentials" and codes[-1] == "TooManyAttempts"


async def test_the_last_sign_in_method_cannot_be_unlinked(demo: Demo) -> None:
    browser = demo.browser()
    await demo.sign_up(browser, "erin@example.com")
    response = await browser.post("/api/auth/account/unlink", json={"provider": "password"})
    assert (response.status_code, response.json()) == (409, {"error": "LastSignInMethod"})
    response = await browser.post("/api/auth/account/unlink", json={"provider": "github"})
    assert (response.status_code, response.json()) == (404, {"error": "MethodNotLinked"})
    methods = (await browser.get("/api/auth/account")).json()["methods"]
    assert [m["provider"] for m in methods] == ["password"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/account/unlink", {"provider": "password"}),
        ("/api/auth/account/delete", {}),
        ("/api/auth/account/link", {"provider": "github"}),
    ],
)
async def test_actions_without_recent_authentication_are_refused(
    demo: Demo, path: str, body: dict[str, str]
) -> None:
    browser = demo.browser()
    signed = await demo.sign_up(browser, "frank@example.com")
    demo.clock.advance(STALE)
    response = await browser.post(path, json=body)
    if path.endswith("/link") and "github" not in demo.app.auth.providers:
        assert response.json()["error"] == "InvalidParams"
        return
    assert (response.status_code, response.json()) == (401, {"error": "RecentAuthRequired"})
    assert await demo.app.auth.get_user(signed["userId"]) is not None


async def test_deleting_with_the_password_removes_every_row_of_the_user(demo: Demo) -> None:
    browser, elsewhere = demo.browser(), demo.browser()
    signed = await demo.sign_up(browser, "gina@example.com")
    other = await demo.sign_in(
        elsewhere, "password", flow="signIn", email="gina@example.com", password=PASSWORD
    )
    await demo.add_note(browser, "mine")
    sessions = [signed["sessionId"], other["sessionId"]]
    before = await demo.rows_of(signed["userId"], sessions)
    assert before["notes.user_id"] == 1 and before["auth_refresh_tokens.session_id"] == 2
    demo.clock.advance(STALE)  # the password stands in for a fresh sign-in
    response = await browser.post("/api/auth/account/delete", json={"password": PASSWORD})
    assert response.json() == {"deleted": True}
    assert set((await demo.rows_of(signed["userId"], sessions)).values()) == {0}
    # Both browsers are signed out: cookies cleared here, the other session revoked.
    assert (await browser.get("/api/auth/account")).status_code == 401
    assert (await elsewhere.get("/api/auth/account")).status_code == 401
    gone = await demo.sign_in(
        demo.browser(), "password", flow="signIn", email="gina@example.com", password=PASSWORD
    )
    assert gone == {"error": "InvalidCredentials"}
    assert "account_deleted" in demo.kinds()


async def test_deleting_a_fresh_session_needs_no_password(demo: Demo) -> None:
    browser = demo.browser()
    signed = await demo.sign_up(browser, "hank@example.com")
    response = await browser.post("/api/auth/account/delete", json={})
    assert response.json() == {"deleted": True}
    assert await demo.app.auth.get_user(signed["userId"]) is None


async def test_deleting_with_a_wrong_password_is_refused(demo: Demo) -> None:
    browser = demo.browser()
    signed = await demo.sign_up(browser, "ivy@example.com")
    response = await browser.post("/api/auth/account/delete", json={"password": "nope nope"})
    assert response.json() == {"error": "InvalidCredentials"}
    assert await demo.app.auth.get_user(signed["userId"]) is not None


async def test_the_before_delete_hook_runs_first_and_can_refuse(demo: Demo) -> None:
    seen: list[str] = []

    async def refuse(user_id: str) -> None:
        seen.append(user_id)
        raise AuthError("unpaid invoices", code="AccountHasInvoices")

    demo.app.auth.before_delete_user = refuse
    browser = demo.browser()
    signed = await demo.sign_up(browser, "jay@example.com")
    response = await browser.post("/api/auth/account/delete", json={})
    assert response.json() == {"error": "AccountHasInvoices"}
    assert seen == [signed["userId"]]
    assert await demo.app.auth.get_user(signed["userId"]) is not None


@pytest.mark.parametrize(
    "path", ["account/password", "account/unlink", "account/delete", "account/link"]
)
async def test_account_actions_refuse_cross_origin_posts(demo: Demo, path: str) -> None:
    browser = demo.browser()
    signed = await demo.sign_up(browser, "kim@example.com")
    response = await browser.post(
        f"/api/auth/{path}",
        data={"provider": "password", "password": PASSWORD},
        headers={"origin": "https://evil.example"},
    )
    assert (response.status_code, response.json()) == (403, {"error": "Forbidden"})
    assert await demo.app.auth.get_user(signed["userId"]) is not None


async def test_the_account_page_offers_each_action_as_a_form(demo: Demo) -> None:
    browser = demo.browser()
    await demo.sign_up(browser, "lee@example.com")
    page = await browser.get("/account", headers=FORM)
    assert page.status_code == 200
    for marker in ('id="password-form"', 'class="unlink-form"', 'id="delete-form"'):
        assert marker in page.text
    response = await browser.post(
        "/api/auth/account/unlink",
        data={"provider": "password", "redirectTo": "/account"},
        headers=FORM,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/account?error=LastSignInMethod"
    shown = await browser.get(response.headers["location"], headers=FORM)
    assert 'data-code="LastSignInMethod"' in shown.text


async def test_events_carry_who_and_where_but_never_secrets(demo: Demo) -> None:
    browser = demo.browser()
    await demo.sign_up(browser, "max@example.com")
    await demo.sign_in(
        demo.browser(), "password", flow="signIn", email="max@example.com", password="wrong one"
    )
    await browser.post("/api/auth/signout", headers={"origin": BASE})
    assert demo.kinds() == ["sign_in", "sign_in_failed", "sign_out"]
    sign_in, failed, sign_out = demo.events
    assert sign_in.provider == "password" and sign_in.session_id is not None
    assert failed.user_id is None and failed.reason == "InvalidCredentials"
    assert sign_out.session_id == sign_in.session_id and sign_out.user_id == sign_in.user_id
    for event in demo.events:
        assert PASSWORD not in repr(event) and "wrong one" not in repr(event)
        assert event.user_agent is not None
