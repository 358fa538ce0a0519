"""Account actions refused with a stable code, and the account kept as it was: deleting with a
password the user does not have (or an absurd one), a ``before_delete_user`` hook that crashes,
email-change codes that are not the user's; and an email change that cannot tell the previous
address still completes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from authbridge import AuthMiddleware, EmailUnavailable
from authbridge.account import mask_identifier
from authbridge.mail import MailMessage
from tests.toolkit.engines import PASSWORD, AuthFactory

from .conftest import BASE, Demo


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The refusals are decided before the store is asked to change anything: SQLite only."""
    return f"sqlite+aiosqlite:///{tmp_path}/auth.db"


@pytest.mark.parametrize(
    ("identifier", "masked"),
    [
        ("alice@example.com", "a***@example.com"),
        ("+15551234567", "***4567"),
        ("123456", "***"),
        ("@example.com", "***.com"),
    ],
)
def test_identifiers_are_masked_to_be_recognised_not_harvested(
    identifier: str, masked: str
) -> None:
    assert mask_identifier(identifier) == masked


async def test_a_user_without_a_password_cannot_delete_by_password(demo: Demo) -> None:
    browser = demo.browser()
    guest = await demo.sign_in(browser, "anonymous")
    response = await browser.post("/api/auth/account/delete", json={"password": "anything at all"})
    assert (response.status_code, response.json()) == (404, {"error": "MethodNotLinked"})
    assert await demo.app.auth.get_user(guest["userId"]) is not None


async def test_an_oversized_password_is_wrong_not_an_error(demo: Demo) -> None:
    browser = demo.browser()
    signed = await demo.sign_up(browser, "oscar@example.com")
    response = await browser.post("/api/auth/account/delete", json={"password": "x" * 5000})
    assert (response.status_code, response.json()) == (401, {"error": "InvalidCredentials"})
    assert await demo.app.auth.get_user(signed["userId"]) is not None


async def test_a_crashing_before_delete_hook_keeps_the_account_with_a_409(
    demo: Demo, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash(user_id: str) -> None:
        raise RuntimeError("billing service down")

    demo.app.auth.before_delete_user = crash
    browser = demo.browser()
    signed = await demo.sign_up(browser, "pat@example.com")
    response = await browser.post("/api/auth/account/delete", json={"password": PASSWORD})
    assert (response.status_code, response.json()) == (409, {"error": "AccountDeletionRefused"})
    assert "before_delete_user failed; the account is kept" in caplog.text
    assert await demo.app.auth.get_user(signed["userId"]) is not None
    assert (await browser.get("/api/auth/account")).status_code == 200


# -- email change ------------------------------------------------------------------------------


class Outbox:
    """An EmailSender that keeps messages, and refuses those to ``refuse``."""

    def __init__(self, refuse: str | None = None) -> None:
        self.messages: list[MailMessage] = []
        self.refuse = refuse

    async def send(self, message: MailMessage) -> None:
        if message.to == self.refuse:
            raise EmailUnavailable("the mailbox is gone")
        self.messages.append(message)

    def code_for(self, to: str) -> str:
        [message] = [m for m in self.messages if m.to == to]
        found = re.search(r"^(\d{8})$", message.text, re.M)
        assert found is not None, message.text
        return found.group(1)


Browsers = AsyncIterator[list[httpx.AsyncClient]]


@pytest.fixture
async def browsers() -> Browsers:
    made: list[httpx.AsyncClient] = []
    yield made
    for client in made:
        await client.aclose()


async def _signed_up(
    app: AuthMiddleware, browsers: list[httpx.AsyncClient], email: str
) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    browsers.append(client)
    signed = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": email, "password": PASSWORD},
        },
    )
    assert signed.status_code == 200, signed.text
    return client


async def test_a_code_sent_for_another_user_does_not_change_my_email(
    auth_factory: AuthFactory, browsers: list[httpx.AsyncClient]
) -> None:
    outbox = Outbox()
    app = AuthMiddleware(Starlette(), await auth_factory({"mailer": outbox}))
    mine = await _signed_up(app, browsers, "mine@example.com")
    theirs = await _signed_up(app, browsers, "theirs@example.com")
    started = await theirs.post("/api/auth/account/email", json={"email": "new@example.com"})
    assert started.json() == {"started": True}
    code = outbox.code_for("new@example.com")
    stolen = await mine.post(
        "/api/auth/account/email", json={"email": "new@example.com", "code": code}
    )
    assert (stolen.status_code, stolen.json()) == (400, {"error": "InvalidCode"})
    assert (await mine.get("/api/auth/account")).json()["user"]["email"] == "mine@example.com"
    assert (await theirs.get("/api/auth/account")).json()["user"]["email"] == "theirs@example.com"


async def test_a_code_that_is_not_text_is_invalid_params(
    auth_factory: AuthFactory, browsers: list[httpx.AsyncClient]
) -> None:
    app = AuthMiddleware(Starlette(), await auth_factory({"mailer": Outbox()}))
    client = await _signed_up(app, browsers, "quinn@example.com")
    response = await client.post(
        "/api/auth/account/email", json={"email": "new@example.com", "code": 12345678}
    )
    assert (response.status_code, response.json()["error"]) == (400, "InvalidParams")


async def test_the_change_completes_when_the_previous_address_cannot_be_told(
    auth_factory: AuthFactory,
    browsers: list[httpx.AsyncClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = Outbox(refuse="gone@example.com")
    app = AuthMiddleware(Starlette(), await auth_factory({"mailer": outbox}))
    client = await _signed_up(app, browsers, "gone@example.com")
    await client.post("/api/auth/account/email", json={"email": "here@example.com"})
    done = await client.post(
        "/api/auth/account/email",
        json={"email": "here@example.com", "code": outbox.code_for("here@example.com")},
    )
    assert done.json() == {"changed": True}
    assert (await client.get("/api/auth/account")).json()["user"]["email"] == "here@example.com"
    assert "could not tell the previous address that the email changed" in caplog.text


async def test_a_guest_adds_an_email_and_no_previous_address_is_told(demo: Demo) -> None:
    outbox = Outbox()
    demo.app.auth.email.mailer = outbox
    browser = demo.browser()
    guest = await demo.sign_in(browser, "anonymous")
    await browser.post("/api/auth/account/email", json={"email": "guest@example.com"})
    done = await browser.post(
        "/api/auth/account/email",
        json={"email": "guest@example.com", "code": outbox.code_for("guest@example.com")},
    )
    assert done.json() == {"changed": True}
    user = await demo.app.auth.get_user(guest["userId"])
    assert user is not None and user.email == "guest@example.com"
    assert [m.to for m in outbox.messages] == ["guest@example.com"]
