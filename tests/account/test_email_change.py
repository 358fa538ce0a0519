"""``POST {prefix}/account/email``: a code to the new address, the old one told; the password
sign-in follows the address; wrong codes, taken addresses and stale sign-ins are refused."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
from starlette.applications import Starlette

from authbridge import AuthMiddleware
from authbridge.mail import MailMessage
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import PASSWORD, AuthFactory

from .conftest import BASE

NEW_PASSWORD = "a brand new passphrase"


class Outbox:
    """An EmailSender that keeps what it was given."""

    def __init__(self) -> None:
        self.messages: list[MailMessage] = []

    async def send(self, message: MailMessage) -> None:
        self.messages.append(message)

    def code_for(self, to: str) -> str:
        [message] = [m for m in self.messages if m.to == to]
        found = re.search(r"^(\d{8})$", message.text, re.M)
        assert found is not None, message.text
        return found.group(1)


async def _signed_in(auth_factory: AuthFactory, outbox: Outbox) -> tuple[httpx.AsyncClient, str]:
    auth = await auth_factory({"mailer": outbox})
    app = AuthMiddleware(Starlette(), auth)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    signed = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": "old@example.com", "password": PASSWORD},
        },
    )
    return client, signed.json()["userId"]


async def test_changing_the_email_sends_a_code_then_switches_and_tells_the_old_address(
    auth_factory: AuthFactory,
) -> None:
    outbox = Outbox()
    client, user_id = await _signed_in(auth_factory, outbox)
    try:
        started = await client.post("/api/auth/account/email", json={"email": "new@example.com"})
        assert started.json() == {"started": True}
        code = outbox.code_for("new@example.com")
        wrong = await client.post(
            "/api/auth/account/email", json={"email": "new@example.com", "code": "00000000"}
        )
        assert wrong.json()["error"] == "InvalidCode"
        done = await client.post(
            "/api/auth/account/email", json={"email": "new@example.com", "code": code}
        )
        assert done.json() == {"changed": True}
        account = (await client.get("/api/auth/account")).json()
        assert account["user"]["email"] == "new@example.com"
        assert account["user"]["emailVerified"] is True
        assert account["methods"] == [{"provider": "password", "identifier": "n***@example.com"}]
        [notice] = [m for m in outbox.messages if m.to == "old@example.com"]
        assert "was just changed" in notice.text
        signed = await client.post(
            "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": "signIn", "email": "new@example.com", "password": PASSWORD},
            },
        )
        assert signed.json()["userId"] == user_id
    finally:
        await client.aclose()


async def test_a_taken_address_gets_the_same_answer_and_no_code(
    auth_factory: AuthFactory,
) -> None:
    outbox = Outbox()
    client, _ = await _signed_in(auth_factory, outbox)
    try:
        await client.post(
            "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": "signUp", "email": "taken@example.com", "password": PASSWORD},
            },
        )
        # That sign-up replaced this browser's session: sign in again as the first user.
        await client.post(
            "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": "signIn", "email": "old@example.com", "password": PASSWORD},
            },
        )
        started = await client.post("/api/auth/account/email", json={"email": "taken@example.com"})
        assert started.json() == {"started": True}
        assert [m.to for m in outbox.messages] == []
    finally:
        await client.aclose()


async def test_changing_the_email_needs_a_recent_sign_in(
    auth_factory: AuthFactory, clock: FakeClock
) -> None:
    outbox = Outbox()
    client, _ = await _signed_in(auth_factory, outbox)
    try:
        clock.advance(timedelta(minutes=5, seconds=1))
        response = await client.post("/api/auth/account/email", json={"email": "x@example.com"})
        assert (response.status_code, response.json()["error"]) == (401, "RecentAuthRequired")
        assert outbox.messages == []
    finally:
        await client.aclose()


async def test_a_reset_code_sent_before_an_email_change_cannot_set_the_password(
    auth_factory: AuthFactory,
) -> None:
    """The code was read from the old mailbox, which no longer signs in to this account."""
    outbox = Outbox()
    app = AuthMiddleware(Starlette(), await auth_factory({"mailer": outbox}))
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as owner,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as other,
    ):

        async def password(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
            answer = await client.post(
                "/api/auth/signin", json={"provider": "password", "params": params}
            )
            body: dict[str, Any] = answer.json()
            return body

        signed = await password(owner, flow="signUp", email="old@example.com", password=PASSWORD)
        assert await password(other, flow="reset", email="old@example.com") == {"started": True}
        reset_code = outbox.code_for("old@example.com")
        await owner.post("/api/auth/account/email", json={"email": "new@example.com"})
        change = {"email": "new@example.com", "code": outbox.code_for("new@example.com")}
        changed = await owner.post("/api/auth/account/email", json=change)
        assert changed.json() == {"changed": True}
        used = await password(
            other,
            flow="reset-verification",
            email="old@example.com",
            code=reset_code,
            newPassword=NEW_PASSWORD,
        )
        assert used == {"error": "InvalidCode"}
        assert (await owner.post("/api/auth/token")).status_code == 200  # still signed in
        again = await password(other, flow="signIn", email="new@example.com", password=PASSWORD)
        assert again["userId"] == signed["userId"]
        new = await password(other, flow="signIn", email="new@example.com", password=NEW_PASSWORD)
        assert new == {"error": "InvalidCredentials"}
