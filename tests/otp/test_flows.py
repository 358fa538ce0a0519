"""The email flows over HTTP (in-process, through the middleware): email code and magic link,
password reset, sign-up verification, phone codes, and the wire formats of §17.2 / §17.4."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authbridge import (
    Auth,
    EmailConfig,
    EmailProvider,
    EmailUnavailable,
    PasswordProvider,
    PhoneProvider,
)
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import PASSWORD, AuthFactory

from .conftest import SmtpServer, client_for, code_in, link_in, text_part

ADA = "ada@example.com"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def email_auth_factory(auth_factory: AuthFactory, smtp_server: SmtpServer) -> AuthFactory:
    async def factory(**email: Any) -> Auth:
        sms: RecordingSms = email.pop("sms", RecordingSms())
        return await auth_factory(
            email=EmailConfig(smtp_url=smtp_server.url, sender="a@example.com", **email),
            auth_kwargs={"providers": [PasswordProvider(), EmailProvider(), PhoneProvider(sms)]},
        )

    return factory


@pytest.fixture
async def auth(email_auth_factory: AuthFactory) -> Auth:
    return await email_auth_factory()


async def sign_in(client: httpx.AsyncClient, provider: str, **params: Any) -> httpx.Response:
    return await client.post("/api/auth/signin", json={"provider": provider, "params": params})


async def signed_in(client: httpx.AsyncClient) -> bool:
    return (await client.post("/api/auth/token")).status_code == 200


async def test_email_sign_in_by_code_over_json(auth: Auth, smtp_server: SmtpServer) -> None:
    async with client_for(auth) as client:
        started = await sign_in(client, "email", email=ADA)
        assert (started.status_code, started.json()) == (200, {"started": True})
        assert not await signed_in(client)
        code = code_in(smtp_server.mailbox.last(ADA))
        done = await sign_in(client, "email", email=ADA, code=code)
        assert done.status_code == 200 and done.json()["signedIn"] is True
        assert await signed_in(client)


async def test_a_wrong_code_is_invalid_code_and_an_exhausted_one_has_retry_after(
    auth: Auth, smtp_server: SmtpServer
) -> None:
    async with client_for(auth) as client:
        await sign_in(client, "email", email=ADA)
        code = code_in(smtp_server.mailbox.last(ADA))
        wrong = "00000000" if code != "00000000" else "11111111"
        for _ in range(5):
            answer = await sign_in(client, "email", email=ADA, code=wrong)
            assert (answer.status_code, answer.json()) == (400, {"error": "InvalidCode"})
        answer = await sign_in(client, "email", email=ADA, code=code)
        assert (answer.status_code, answer.json()) == (429, {"error": "TooManyAttempts"})
        assert int(answer.headers["retry-after"]) >= 1
        again = await sign_in(client, "email", email=ADA)
        assert again.status_code == 429 and int(again.headers["retry-after"]) >= 1


async def test_a_magic_link_get_uses_nothing_and_its_form_signs_in_any_browser(
    auth: Auth, smtp_server: SmtpServer
) -> None:
    async with client_for(auth) as requester:
        await sign_in(requester, "email", email=ADA, redirectTo="/notes")
    link = link_in(smtp_server.mailbox.last(ADA))
    parts = urlsplit(link)
    assert parts.path == "/api/auth/email/confirm"
    assert parse_qs(parts.query)["redirectTo"] == ["/notes"]
    async with client_for(auth, ip="192.0.2.1") as scanner:
        for _ in range(3):  # a mail scanner fetching the link
            page = await scanner.get(f"{parts.path}?{parts.query}")
            assert page.status_code == 200
        assert not await signed_in(scanner)
    assert page.headers["cache-control"] == "private, no-store"
    assert "script-src 'nonce-" in page.headers["content-security-policy"]
    assert 'id="confirm-form"' in page.text and 'action="/api/auth/signin"' in page.text
    form = _form_fields(page.text)
    assert form["provider"] == "email" and form["redirectTo"] == "/notes"
    async with client_for(auth, ip="192.0.2.2") as other_browser:
        done = await other_browser.post("/api/auth/signin", data=form)
        assert (done.status_code, done.headers["location"]) == (303, "/notes")
        assert await signed_in(other_browser)
        used = await other_browser.get(f"{parts.path}?{parts.query}")
        assert used.status_code == 400 and 'id="confirm-invalid"' in used.text


async def test_a_used_link_posted_again_lands_on_the_sign_in_page_with_invalid_code(
    auth: Auth, smtp_server: SmtpServer
) -> None:
    async with client_for(auth) as client:
        await sign_in(client, "email", email=ADA)
        parts = urlsplit(link_in(smtp_server.mailbox.last(ADA)))
        form = _form_fields((await client.get(f"{parts.path}?{parts.query}")).text)
        assert (await client.post("/api/auth/signin", data=form)).status_code == 303
        again = await client.post("/api/auth/signin", data=form)
        assert again.status_code == 303
        assert again.headers["location"] == "/signin?error=InvalidCode"


async def test_a_form_that_sends_a_code_returns_to_its_page_with_started(
    auth: Auth, smtp_server: SmtpServer
) -> None:
    async with client_for(auth) as client:
        answer = await client.post(
            "/api/auth/signin",
            data={"provider": "email", "email": ADA},
            headers={"referer": "http://localhost/signin?next=/notes&error=InvalidCode"},
        )
        assert answer.status_code == 303
        target = urlsplit(answer.headers["location"])
        assert target.path == "/signin"
        assert parse_qs(target.query) == {"next": ["/notes"], "started": ["email"], "email": [ADA]}
        code = code_in(smtp_server.mailbox.last(ADA))
        done = await client.post(
            "/api/auth/signin",
            data={"provider": "email", "email": ADA, "code": code, "redirectTo": "/notes"},
        )
        assert (done.status_code, done.headers["location"]) == (303, "/notes")


async def test_smtp_down_answers_503_email_unavailable(
    auth_factory: AuthFactory, down_smtp_url: str
) -> None:
    auth = await auth_factory(
        email=EmailConfig(smtp_url=down_smtp_url, smtp_attempts=1),
        auth_kwargs={"providers": [EmailProvider()]},
    )
    async with client_for(auth) as client:
        answer = await sign_in(client, "email", email=ADA)
        assert (answer.status_code, answer.json()) == (503, {"error": "EmailUnavailable"})


async def test_password_reset_replaces_the_password_and_ends_every_other_session(
    auth: Auth, smtp_server: SmtpServer
) -> None:
    await auth.sign_up_with_password(ADA, PASSWORD)
    async with client_for(auth) as other, client_for(auth) as forgetful:
        assert (
            await sign_in(other, "password", flow="signIn", email=ADA, password=PASSWORD)
        ).json()["signedIn"]
        started = await sign_in(forgetful, "password", flow="reset", email=ADA)
        assert started.json() == {"started": True}
        code = code_in(smtp_server.mailbox.last(ADA))
        done = await sign_in(
            forgetful,
            "password",
            flow="reset-verification",
            email=ADA,
            code=code,
            newPassword=NEW_PASSWORD,
        )
        assert done.json()["signedIn"] is True
        assert await signed_in(forgetful)
        assert not await signed_in(other)
    with pytest.raises(Exception, match="InvalidCredentials"):
        await auth.sign_in_with_password(ADA, PASSWORD)
    result = await auth.sign_in_with_password(ADA, NEW_PASSWORD)
    user = await auth.get_user(result.user_id)
    assert user is not None and user.data["email_verified_at"] is not None


async def test_a_weak_new_password_is_refused_before_the_reset_code_is_used(
    auth: Auth, smtp_server: SmtpServer
) -> None:
    await auth.sign_up_with_password(ADA, PASSWORD)
    async with client_for(auth) as client:
        await sign_in(client, "password", flow="reset", email=ADA)
        code = code_in(smtp_server.mailbox.last(ADA))
        params = {"flow": "reset-verification", "email": ADA, "code": code}
        weak = await sign_in(client, "password", **params, newPassword="short")
        assert weak.json() == {"error": "InvalidPassword"}
        assert (await sign_in(client, "password", **params, newPassword=NEW_PASSWORD)).json()[
            "signedIn"
        ]


async def test_a_reset_for_an_unknown_address_answers_the_same_and_mails_a_notice(
    auth: Auth, smtp_server: SmtpServer
) -> None:
    await auth.sign_up_with_password(ADA, PASSWORD)
    async with client_for(auth) as client:
        known = await sign_in(client, "password", flow="reset", email=ADA)
        unknown = await sign_in(client, "password", flow="reset", email="nobody@example.com")
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    notice = text_part(smtp_server.mailbox.last("nobody@example.com"))
    assert "no account" in notice
    assert not any(line.strip().isdigit() for line in notice.splitlines())


async def test_the_reset_link_page_asks_for_the_new_password_without_auto_submitting(
    auth: Auth, smtp_server: SmtpServer
) -> None:
    await auth.sign_up_with_password(ADA, PASSWORD)
    async with client_for(auth) as client:
        await sign_in(client, "password", flow="reset", email=ADA)
        parts = urlsplit(link_in(smtp_server.mailbox.last(ADA)))
        page = await client.get(f"{parts.path}?{parts.query}")
        assert 'name="newPassword"' in page.text and "<script" not in page.text
        form = _form_fields(page.text)
        assert form["flow"] == "reset-verification"
        done = await client.post("/api/auth/signin", data={**form, "newPassword": NEW_PASSWORD})
        assert done.status_code == 303 and await signed_in(client)
    await auth.sign_in_with_password(ADA, NEW_PASSWORD)


async def test_required_verification_signs_in_only_after_the_code(
    email_auth_factory: AuthFactory, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    auth = await email_auth_factory(verification="required")
    async with client_for(auth) as client:
        up = await sign_in(client, "password", flow="signUp", email=ADA, password=PASSWORD)
        assert up.json() == {"started": True}
        assert not await signed_in(client)
        again = await sign_in(client, "password", flow="signIn", email=ADA, password=PASSWORD)
        assert again.json() == {"started": True}
        code = code_in(smtp_server.mailbox.last(ADA))
        done = await sign_in(client, "password", flow="email-verification", email=ADA, code=code)
        assert done.json()["signedIn"] is True
        user = await auth.get_user(done.json()["userId"])
        assert user is not None and user.data["email_verified_at"] == clock.now
        later = await sign_in(client, "password", flow="signIn", email=ADA, password=PASSWORD)
        assert later.json()["signedIn"] is True


async def test_required_verification_that_cannot_be_mailed_leaves_no_account(
    email_auth_factory: AuthFactory, smtp_server: SmtpServer
) -> None:
    auth = await email_auth_factory(verification="required", smtp_attempts=1)
    smtp_server.mailbox.refused.add(ADA)
    async with client_for(auth) as client:
        up = await sign_in(client, "password", flow="signUp", email=ADA, password=PASSWORD)
        assert (up.status_code, up.json()) == (503, {"error": "EmailUnavailable"})
        smtp_server.mailbox.refused.clear()
        retry = await sign_in(client, "password", flow="signUp", email=ADA, password=PASSWORD)
        assert retry.json() == {"started": True}


async def test_optional_verification_signs_in_and_the_code_verifies_the_email(
    email_auth_factory: AuthFactory, smtp_server: SmtpServer
) -> None:
    auth = await email_auth_factory(verification="optional")
    async with client_for(auth) as client:
        up = await sign_in(client, "password", flow="signUp", email=ADA, password=PASSWORD)
        assert up.json()["signedIn"] is True
        user = await auth.get_user(up.json()["userId"])
        assert user is not None and user.data["email_verified_at"] is None
        code = code_in(smtp_server.mailbox.last(ADA))
        done = await sign_in(client, "password", flow="email-verification", email=ADA, code=code)
        assert done.json()["userId"] == up.json()["userId"]
        user = await auth.get_user(up.json()["userId"])
        assert user is not None and isinstance(user.data["email_verified_at"], datetime)


class RecordingSms:
    """An :class:`~authbridge.SmsSender` for a gateway that is this list (authbridge ships none)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.down = False

    async def send_sms(self, to: str, text: str) -> None:
        if self.down:
            raise EmailUnavailable("gateway down")
        self.sent.append((to, text))


async def test_phone_sign_in_by_code_sets_phone_verified_at(
    email_auth_factory: AuthFactory, clock: FakeClock
) -> None:
    sms = RecordingSms()
    auth = await email_auth_factory(sms=sms)
    async with client_for(auth) as client:
        started = await sign_in(client, "phone", phone="+1 (555) 123-4567")
        assert started.json() == {"started": True}
        ((to, text),) = sms.sent
        assert to == "+15551234567"
        code = text.split()[0]
        done = await sign_in(client, "phone", phone="+15551234567", code=code)
        assert done.json()["signedIn"] is True
        user = await auth.get_user(done.json()["userId"])
        assert user is not None
        assert (user.data["phone"], user.data["phone_verified_at"]) == ("+15551234567", clock.now)
        sms.down = True
        clock.advance(60)
        failed = await sign_in(client, "phone", phone="+15551234567")
        assert (failed.status_code, failed.json()) == (503, {"error": "EmailUnavailable"})
        bad = await sign_in(client, "phone", phone="555")
        assert bad.json()["error"] == "InvalidParams"


def _form_fields(html: str) -> dict[str, str]:
    """The hidden inputs of the confirmation page's form."""
    import re

    return {
        name: value
        for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html)
    }


async def test_a_code_for_an_address_someone_else_signed_up_with_ends_their_access(
    auth: Auth, smtp_server: SmtpServer
) -> None:
    async with client_for(auth) as squatter, client_for(auth) as owner:
        up = await sign_in(squatter, "password", flow="signUp", email=ADA, password=PASSWORD)
        assert up.json()["signedIn"] is True
        await sign_in(owner, "email", email=ADA)
        done = await sign_in(owner, "email", email=ADA, code=code_in(smtp_server.mailbox.last(ADA)))
        assert done.json()["userId"] == up.json()["userId"]
        assert not await signed_in(squatter)
        again = await sign_in(squatter, "password", flow="signIn", email=ADA, password=PASSWORD)
        assert again.json() == {"error": "InvalidCredentials"}
        assert await signed_in(owner)


async def test_a_code_for_a_verified_account_keeps_its_password_and_sessions(
    email_auth_factory: AuthFactory, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    auth = await email_auth_factory(verification="optional")
    async with client_for(auth) as laptop, client_for(auth) as phone:
        await sign_in(laptop, "password", flow="signUp", email=ADA, password=PASSWORD)
        code = code_in(smtp_server.mailbox.last(ADA))
        await sign_in(laptop, "password", flow="email-verification", email=ADA, code=code)
        clock.advance(60)
        await sign_in(phone, "email", email=ADA)
        done = await sign_in(phone, "email", email=ADA, code=code_in(smtp_server.mailbox.last(ADA)))
        assert done.json()["signedIn"] is True
        assert await signed_in(laptop)
    await auth.sign_in_with_password(ADA, PASSWORD)
