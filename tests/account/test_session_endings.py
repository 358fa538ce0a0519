"""Changing the account's email, its password, or resetting the password ends the user's other
sessions (other browsers, and other tabs in ``per_tab`` mode); the session that made the change
stays signed in (a reset signs in afresh)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from starlette.applications import Starlette

from authbridge import Auth, AuthMiddleware
from authbridge.events import AuthEvent
from authbridge.mail import MailMessage
from tests.toolkit.engines import PASSWORD, AuthFactory

from .conftest import BASE

NEW_PASSWORD = "another horse battery staple"


class Outbox:
    """An EmailSender that keeps what it was given."""

    def __init__(self) -> None:
        self.messages: list[MailMessage] = []

    async def send(self, message: MailMessage) -> None:
        self.messages.append(message)

    def last_code(self, to: str) -> str:
        message = [m for m in self.messages if m.to == to][-1]
        found = re.search(r"^(\d{8})$", message.text, re.M)
        assert found is not None, message.text
        return found.group(1)


class Browsers:
    def __init__(self, auth: Auth) -> None:
        self.app = AuthMiddleware(Starlette(), auth)
        self.made: list[httpx.AsyncClient] = []

    def new(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE)
        self.made.append(client)
        return client

    async def close(self) -> None:
        for client in self.made:
            await client.aclose()


async def signin(client: httpx.AsyncClient, tab: str | None = None, **params: Any) -> Any:
    headers = {"x-authbridge-tab": tab} if tab else {}
    response = await client.post(
        "/api/auth/signin", json={"provider": "password", "params": params}, headers=headers
    )
    return response.json()


async def account_status(client: httpx.AsyncClient, tab: str | None = None) -> int:
    headers = {"accept": "application/json", **({"x-authbridge-tab": tab} if tab else {})}
    return (await client.get("/api/auth/account", headers=headers)).status_code


async def test_a_confirmed_email_change_ends_every_other_session_and_keeps_this_one(
    auth_factory: AuthFactory,
) -> None:
    outbox = Outbox()
    events: list[AuthEvent] = []
    auth = await auth_factory({"mailer": outbox, "on_event": events.append})
    browsers = Browsers(auth)
    try:
        here, laptop, phone = browsers.new(), browsers.new(), browsers.new()
        me = await signin(here, flow="signUp", email="old@example.com", password=PASSWORD)
        elsewhere = [
            await signin(b, flow="signIn", email="old@example.com", password=PASSWORD)
            for b in (laptop, phone)
        ]
        someone = await signin(
            browsers.new(), flow="signUp", email="someone@example.com", password=PASSWORD
        )
        started = await here.post("/api/auth/account/email", json={"email": "new@example.com"})
        assert started.json() == {"started": True}
        # Asking for the code changes nothing yet.
        assert await account_status(laptop) == 200
        done = await here.post(
            "/api/auth/account/email",
            json={"email": "new@example.com", "code": outbox.last_code("new@example.com")},
        )
        assert done.json() == {"changed": True}
        assert await account_status(here) == 200
        for other, browser in zip(elsewhere, (laptop, phone), strict=True):
            assert await auth.get_session(other["sessionId"]) is None
            assert await account_status(browser) == 401  # its access token is refused at once
        assert await auth.get_session(me["sessionId"]) is not None
        assert await auth.get_session(someone["sessionId"]) is not None  # other users untouched
        [changed] = [e for e in events if e.kind == "email_changed"]
        assert changed.session_id == me["sessionId"]
        assert changed.reason == "2 other session(s) ended"
    finally:
        await browsers.close()


async def test_per_tab_an_email_change_in_one_tab_signs_the_other_tabs_out(
    auth_factory: AuthFactory,
) -> None:
    outbox = Outbox()
    auth = await auth_factory({"mailer": outbox}, session_sharing="per_tab")
    browsers = Browsers(auth)
    try:
        browser = browsers.new()
        tab_a, tab_b = "tabaaaaaaa", "tabbbbbbbb"
        await signin(browser, tab_a, flow="signUp", email="tabs@example.com", password=PASSWORD)
        await signin(browser, tab_b, flow="signIn", email="tabs@example.com", password=PASSWORD)
        headers = {"x-authbridge-tab": tab_a}
        await browser.post(
            "/api/auth/account/email", json={"email": "moved@example.com"}, headers=headers
        )
        done = await browser.post(
            "/api/auth/account/email",
            json={"email": "moved@example.com", "code": outbox.last_code("moved@example.com")},
            headers=headers,
        )
        assert done.json() == {"changed": True}
        assert await account_status(browser, tab_a) == 200
        assert await account_status(browser, tab_b) == 401
    finally:
        await browsers.close()


async def test_a_wrong_code_ends_nothing(auth_factory: AuthFactory) -> None:
    outbox = Outbox()
    auth = await auth_factory({"mailer": outbox})
    browsers = Browsers(auth)
    try:
        here, there = browsers.new(), browsers.new()
        await signin(here, flow="signUp", email="keep@example.com", password=PASSWORD)
        await signin(there, flow="signIn", email="keep@example.com", password=PASSWORD)
        await here.post("/api/auth/account/email", json={"email": "next@example.com"})
        wrong = await here.post(
            "/api/auth/account/email", json={"email": "next@example.com", "code": "00000000"}
        )
        assert wrong.json() == {"error": "InvalidCode"}
        assert await account_status(there) == 200
    finally:
        await browsers.close()


async def test_a_password_change_and_a_reset_end_the_other_sessions_too(
    auth_factory: AuthFactory,
) -> None:
    outbox = Outbox()
    auth = await auth_factory({"mailer": outbox})
    browsers = Browsers(auth)
    try:
        here, there = browsers.new(), browsers.new()
        await signin(here, flow="signUp", email="pw@example.com", password=PASSWORD)
        await signin(there, flow="signIn", email="pw@example.com", password=PASSWORD)
        changed = await here.post(
            "/api/auth/account/password",
            json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        )
        assert changed.json() == {"changed": True}
        assert (await account_status(here), await account_status(there)) == (200, 401)

        # A reset from a third browser ends every session, then signs that browser in.
        await signin(there, flow="signIn", email="pw@example.com", password=NEW_PASSWORD)
        forgetful = browsers.new()
        assert await signin(forgetful, flow="reset", email="pw@example.com") == {"started": True}
        reset = await signin(
            forgetful,
            flow="reset-verification",
            email="pw@example.com",
            code=outbox.last_code("pw@example.com"),
            newPassword=PASSWORD,
        )
        assert reset["signedIn"] is True
        statuses = [await account_status(b) for b in (here, there, forgetful)]
        assert statuses == [401, 401, 200]
    finally:
        await browsers.close()
