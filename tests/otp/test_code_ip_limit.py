"""Wrong one-time codes are limited per client IP as well as per code: a client guessing codes
across many addresses runs out after ``EmailConfig.ip_code_attempts`` wrong ones per period,
whatever the flow (email sign-in, magic link, password reset, phone); right codes cost nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from authbridge import (
    Auth,
    EmailConfig,
    EmailProvider,
    PasswordProvider,
    PhoneProvider,
)
from tests.toolkit.clock import FakeClock as Clock
from tests.toolkit.engines import PASSWORD, AuthFactory

from .conftest import SmtpServer, client_for, code_in

LIMIT = 3
ATTACKER, VICTIM, OTHER = "203.0.113.66", "198.51.100.1", "192.0.2.44"


class RecordingSms:
    def __init__(self) -> None:
        self.sent: dict[str, str] = {}

    async def send_sms(self, to: str, text: str) -> None:
        self.sent[to] = text.split()[0]


@pytest.fixture
def sms() -> RecordingSms:
    return RecordingSms()


@pytest.fixture
async def auth(auth_factory: AuthFactory, smtp_server: SmtpServer, sms: RecordingSms) -> Auth:
    return await auth_factory(
        email=EmailConfig(smtp_url=smtp_server.url, sender="a@example.com", ip_code_attempts=LIMIT),
        auth_kwargs={"providers": [PasswordProvider(), EmailProvider(), PhoneProvider(sms)]},
    )


async def sign_in(client: httpx.AsyncClient, provider: str, **params: Any) -> httpx.Response:
    return await client.post("/api/auth/signin", json={"provider": provider, "params": params})


def wrong(code: str) -> str:
    return "00000000" if code != "00000000" else "11111111"


def assert_limited(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json() == {"error": "TooManyAttempts"}
    assert int(answer.headers["retry-after"]) >= 1


async def test_one_client_guessing_across_addresses_is_stopped_and_refills(
    auth: Auth, smtp_server: SmtpServer, clock: Clock
) -> None:
    victims = [f"victim{n}@example.com" for n in range(LIMIT + 2)]
    async with client_for(auth, ip=VICTIM) as victim, client_for(auth, ip=ATTACKER) as attacker:
        for address in victims:
            assert (await sign_in(victim, "email", email=address)).status_code == 200
        codes = {a: code_in(smtp_server.mailbox.last(a)) for a in victims}
        # One wrong guess per address: each code's own budget (5 tries) is far from spent...
        for address in victims[:LIMIT]:
            answer = await sign_in(attacker, "email", email=address, code=wrong(codes[address]))
            assert answer.json() == {"error": "InvalidCode"}
        # ...but the client's is: even a right code is refused now, and nothing is consumed.
        right = victims[LIMIT]
        assert_limited(await sign_in(attacker, "email", email=right, code=codes[right]))
        # Other clients are not affected: the victim uses the very code.
        async with client_for(auth, ip=OTHER) as other:
            done = await sign_in(other, "email", email=right, code=codes[right])
            assert done.json()["signedIn"] is True
        # The bucket refills continuously: one more try after a third of the period.
        clock.advance(timedelta(hours=1) / LIMIT + timedelta(seconds=1))
        last = victims[LIMIT + 1]
        answer = await sign_in(attacker, "email", email=last, code=wrong(codes[last]))
        assert answer.json() == {"error": "InvalidCode"}
        assert_limited(await sign_in(attacker, "email", email=last, code=codes[last]))


async def test_right_codes_cost_nothing(auth: Auth, smtp_server: SmtpServer) -> None:
    async with client_for(auth, ip=ATTACKER) as client:
        for n in range(LIMIT * 2):
            address = f"user{n}@example.com"
            await sign_in(client, "email", email=address)
            code = code_in(smtp_server.mailbox.last(address))
            done = await sign_in(client, "email", email=address, code=code)
            assert done.status_code == 200, done.text


async def test_every_code_flow_draws_on_the_same_bucket(
    auth: Auth, smtp_server: SmtpServer, sms: RecordingSms
) -> None:
    await auth.sign_up_with_password("ada@example.com", PASSWORD)
    async with client_for(auth, ip=ATTACKER) as client:
        await sign_in(client, "password", flow="reset", email="ada@example.com")
        reset_code = code_in(smtp_server.mailbox.last("ada@example.com"))
        guesses = [
            await sign_in(client, "email", token="AAAAAAAAAAAAAAAAAAAAAA.wrong-link-secret"),
            await sign_in(
                client,
                "password",
                flow="reset-verification",
                email="ada@example.com",
                code=wrong(reset_code),
                newPassword="a brand new passphrase",
            ),
            await sign_in(client, "phone", phone="+15551234567", code="12345678"),
        ]
        assert [g.json() for g in guesses] == [{"error": "InvalidCode"}] * LIMIT
        await sign_in(client, "phone", phone="+15557654321")
        assert_limited(
            await sign_in(client, "phone", phone="+15557654321", code=sms.sent["+15557654321"])
        )
        assert_limited(
            await sign_in(
                client,
                "password",
                flow="reset-verification",
                email="ada@example.com",
                code=reset_code,
                newPassword="a brand new passphrase",
            )
        )


def test_the_default_allows_fifty_wrong_codes_per_client_and_period() -> None:
    assert EmailConfig().ip_code_attempts == 50


async def test_the_email_change_code_is_limited_too(auth: Auth, smtp_server: SmtpServer) -> None:
    async with client_for(auth, ip=ATTACKER) as client:
        signed = await sign_in(
            client, "password", flow="signUp", email="grace@example.com", password=PASSWORD
        )
        assert signed.json()["signedIn"] is True
        change = {"email": "grace.new@example.com"}
        assert (await client.post("/api/auth/account/email", json=change)).status_code == 200
        code = code_in(smtp_server.mailbox.last("grace.new@example.com"))
        for _ in range(LIMIT):
            answer = await client.post(
                "/api/auth/account/email", json={**change, "code": wrong(code)}
            )
            assert answer.json() == {"error": "InvalidCode"}
        assert_limited(await client.post("/api/auth/account/email", json={**change, "code": code}))
