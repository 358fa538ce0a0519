"""One-time codes through the ``email`` provider, on SQLite and PostgreSQL, with a real SMTP server
and the injected clock: lifetime boundaries, the wrong-code budget, replacement, single use,
concurrent use, send throttling and what an undeliverable message leaves behind."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from authbridge import (
    Auth,
    EmailConfig,
    EmailProvider,
    EmailUnavailable,
    InvalidCode,
    PasswordProvider,
    SignInResult,
    Started,
    TooManyAttempts,
)
from authbridge.providers import SignInRequest
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory

from .conftest import SmtpServer, code_in, token_in

ADA = "ada@example.com"
LIFETIME = timedelta(minutes=15)


@pytest.fixture
async def auth(auth_factory: AuthFactory, smtp_server: SmtpServer) -> Auth:
    return await auth_factory(
        email=EmailConfig(smtp_url=smtp_server.url, sender="a@example.com", smtp_attempts=1),
        auth_kwargs={"providers": [PasswordProvider(), EmailProvider()]},
    )


async def step(auth: Auth, params: dict[str, str], ip: str | None = None) -> Any:
    return await auth.sign_in_step("email", params, SignInRequest(ip=ip))


async def send(auth: Auth, email: str = ADA, ip: str | None = "198.51.100.7") -> None:
    assert await step(auth, {"email": email}, ip) == Started()


async def use(auth: Auth, code: str, email: str = ADA) -> SignInResult:
    result = await step(auth, {"email": email, "code": code})
    assert isinstance(result, SignInResult)
    return result


async def test_a_code_signs_in_a_new_address_as_a_user_with_a_verified_email(
    auth: Auth, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    await send(auth)
    result = await use(auth, code_in(smtp_server.mailbox.last(ADA)))
    user = await auth.get_user(result.user_id)
    assert user is not None and user.email == ADA
    assert user.data["email_verified_at"] == clock.now


async def test_codes_are_stored_only_as_hashes(auth: Auth, smtp_server: SmtpServer) -> None:
    await send(auth)
    message = smtp_server.mailbox.last(ADA)
    table = auth.store.tables.verification_codes
    async with auth.store.read() as conn:
        (row,) = (await conn.execute(select(table))).all()
    stored = " ".join(str(v) for v in row)
    assert code_in(message) not in stored
    assert token_in(message).split(".")[1] not in stored


@pytest.mark.parametrize(
    ("elapsed", "works"),
    [(LIFETIME - timedelta(milliseconds=1), True), (LIFETIME, False)],
    ids=["just-inside", "just-outside"],
)
async def test_a_code_works_only_within_its_lifetime(
    auth: Auth, smtp_server: SmtpServer, clock: FakeClock, elapsed: timedelta, works: bool
) -> None:
    await send(auth)
    clock.advance(elapsed)
    code = code_in(smtp_server.mailbox.last(ADA))
    if works:
        await use(auth, code)
    else:
        with pytest.raises(InvalidCode):
            await use(auth, code)


async def test_five_wrong_codes_void_the_code_and_then_too_many_attempts_says_when(
    auth: Auth, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    await send(auth)
    code = code_in(smtp_server.mailbox.last(ADA))
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    for _ in range(5):
        with pytest.raises(InvalidCode):
            await use(auth, wrong)
    clock.advance(10)
    with pytest.raises(TooManyAttempts) as caught:
        await use(auth, code)
    assert caught.value.retry_after == pytest.approx(50)


async def test_a_code_is_used_once(auth: Auth, smtp_server: SmtpServer) -> None:
    await send(auth)
    code = code_in(smtp_server.mailbox.last(ADA))
    await use(auth, code)
    with pytest.raises(InvalidCode):
        await use(auth, code)


async def test_a_new_code_voids_the_previous_code_and_link(
    auth: Auth, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    await send(auth)
    first = smtp_server.mailbox.last(ADA)
    clock.advance(60)
    await send(auth)
    second = smtp_server.mailbox.last(ADA)
    with pytest.raises(InvalidCode):
        await use(auth, code_in(first))
    with pytest.raises(InvalidCode):
        await step(auth, {"token": token_in(first)})
    await use(auth, code_in(second))


async def test_using_the_link_uses_the_code_too(auth: Auth, smtp_server: SmtpServer) -> None:
    await send(auth)
    message = smtp_server.mailbox.last(ADA)
    result = await step(auth, {"token": token_in(message)})
    assert isinstance(result, SignInResult)
    with pytest.raises(InvalidCode):
        await use(auth, code_in(message))


async def test_concurrent_uses_of_one_code_sign_in_exactly_once(
    auth: Auth, smtp_server: SmtpServer
) -> None:
    await send(auth)
    code = code_in(smtp_server.mailbox.last(ADA))
    outcomes: list[Any] = await asyncio.gather(
        *(step(auth, {"email": ADA, "code": code}) for _ in range(8)),
        return_exceptions=True,
    )
    assert sum(isinstance(o, SignInResult) for o in outcomes) == 1
    assert all(isinstance(o, (SignInResult, InvalidCode)) for o in outcomes), outcomes


async def test_one_message_per_address_per_minute(
    auth: Auth, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    await send(auth)
    clock.advance(59)
    with pytest.raises(TooManyAttempts) as caught:
        await send(auth)
    assert caught.value.retry_after == pytest.approx(1)
    await send(auth, "grace@example.com")  # other addresses are not affected
    clock.advance(1)
    await send(auth)
    assert len(smtp_server.mailbox.to(ADA)) == 2


async def test_ten_messages_per_address_per_hour_refilling_one_every_six_minutes(
    auth_factory: AuthFactory, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    auth = await auth_factory(
        email=EmailConfig(
            smtp_url=smtp_server.url, sender="a@example.com", resend_interval=timedelta(0)
        ),
        auth_kwargs={"providers": [EmailProvider()]},
    )
    for _ in range(10):
        await send(auth)
    with pytest.raises(TooManyAttempts) as caught:
        await send(auth)
    assert caught.value.retry_after == pytest.approx(360)
    clock.advance(360)
    await send(auth)
    assert len(smtp_server.mailbox.to(ADA)) == 11


async def test_one_client_ip_is_limited_across_addresses(
    auth_factory: AuthFactory, smtp_server: SmtpServer
) -> None:
    auth = await auth_factory(
        email=EmailConfig(smtp_url=smtp_server.url, sender="a@example.com", ip_sends_per_hour=3),
        auth_kwargs={"providers": [EmailProvider()]},
    )
    for n in range(3):
        await send(auth, f"user{n}@example.com")
    with pytest.raises(TooManyAttempts):
        await send(auth, "user3@example.com")
    await send(auth, "user3@example.com", ip="198.51.100.8")


async def test_an_undeliverable_message_keeps_the_previous_code_and_is_not_counted(
    auth: Auth, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    await send(auth)
    first = code_in(smtp_server.mailbox.last(ADA))
    clock.advance(60)
    smtp_server.mailbox.refused.add(ADA)
    for _ in range(3):  # not throttled: the failed sends did not count
        with pytest.raises(EmailUnavailable):
            await send(auth)
    await use(auth, first)


async def test_the_answer_is_started_whether_or_not_the_address_has_an_account(
    auth: Auth, smtp_server: SmtpServer
) -> None:
    await auth.sign_up_with_password(ADA, "correct horse battery staple")
    await send(auth, ADA)
    await send(auth, "nobody@example.com")
    assert code_in(smtp_server.mailbox.last(ADA))
    assert code_in(smtp_server.mailbox.last("nobody@example.com"))


async def test_a_code_for_an_existing_user_signs_into_that_user_and_verifies_the_email(
    auth: Auth, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    signed_up = await auth.sign_up_with_password(ADA, "correct horse battery staple")
    await send(auth)
    result = await use(auth, code_in(smtp_server.mailbox.last(ADA)))
    assert result.user_id == signed_up.user_id
    user = await auth.get_user(result.user_id)
    assert user is not None and user.data["email_verified_at"] == clock.now


async def test_cleanup_removes_used_and_expired_codes(
    auth: Auth, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    await send(auth)
    await send(auth, "grace@example.com")
    await use(auth, code_in(smtp_server.mailbox.last(ADA)))
    clock.advance(LIFETIME)
    assert (await auth.cleanup()).verification_codes == 2
    table = auth.store.tables.verification_codes
    async with auth.store.read() as conn:
        assert (await conn.execute(select(table.c.id))).all() == []


async def code_rows(auth: Auth) -> list[str]:
    table = auth.store.tables.verification_codes
    async with auth.store.read() as conn:
        return [r.identifier for r in await conn.execute(select(table.c.identifier))]


async def test_cleanup_deletes_every_stale_code_in_bounded_batches_and_counts_them(
    auth: Auth, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    stale = [f"user{i}@example.com" for i in range(5)]
    for i, email in enumerate(stale):
        await send(auth, email, ip=f"198.51.100.{i + 1}")
    await use(auth, code_in(smtp_server.mailbox.last(stale[0])), stale[0])  # used: stale too
    clock.advance(LIFETIME - timedelta(seconds=1))
    await send(auth, "live@example.com")
    clock.advance(timedelta(seconds=1))  # the five have expired; the last code lives on
    seen: list[int] = []

    bounded = await auth.cleanup(batch_size=2, max_batches=2, progress=seen.append)

    assert bounded.verification_codes == 4
    assert seen[:2] == [2, 4] and seen == sorted(seen) and seen[-1] == bounded.total
    assert len(await code_rows(auth)) == 2
    rest = await auth.cleanup(batch_size=2)
    assert rest.verification_codes == 1 and rest.total == 1
    assert await code_rows(auth) == ["live@example.com"]
    assert (await auth.cleanup(batch_size=2)).verification_codes == 0
