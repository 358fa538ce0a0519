"""The second-factor and passkey repositories: single use, expiry and compare-and-set."""

from __future__ import annotations

from datetime import timedelta

from authbridge import Auth
from tests.toolkit.clock import FakeClock


async def user(auth: Auth) -> str:
    return (await auth.sign_up_with_password("ada@example.com", "correct horse battery")).user_id


async def test_a_challenge_is_taken_once(auth: Auth, clock: FakeClock) -> None:
    now = clock()
    challenge_id = await auth.passkeys.add_challenge(
        "signin", "abc", None, now, now + timedelta(minutes=5)
    )
    taken = await auth.passkeys.take_challenge(challenge_id, "signin", now)
    assert taken is not None and taken.challenge == "abc"
    assert await auth.passkeys.take_challenge(challenge_id, "signin", now) is None


async def test_a_challenge_expires_and_serves_only_its_purpose(
    auth: Auth, clock: FakeClock
) -> None:
    now = clock()
    until = now + timedelta(minutes=5)
    first = await auth.passkeys.add_challenge("signin", "a", None, now, until)
    assert await auth.passkeys.take_challenge(first, "signin", until) is None  # at expiry: gone
    second = await auth.passkeys.add_challenge("register", "b", None, now, until)
    assert await auth.passkeys.take_challenge(second, "signin", now) is None  # wrong purpose
    assert await auth.passkeys.take_challenge(second, "register", now) is None  # and consumed
    third = await auth.passkeys.add_challenge("signin", "c", None, now, until)
    almost = until - timedelta(milliseconds=1)
    assert await auth.passkeys.take_challenge(third, "signin", almost) is not None


async def test_expired_challenges_are_swept_when_new_ones_are_made(
    auth: Auth, clock: FakeClock
) -> None:
    from sqlalchemy import func, select

    now = clock()
    for _ in range(3):
        await auth.passkeys.add_challenge("signin", "x", None, now, now + timedelta(minutes=5))
    later = now + timedelta(minutes=6)
    await auth.passkeys.add_challenge("signin", "y", None, later, later + timedelta(minutes=5))
    table = auth.store.tables.webauthn_challenges
    async with auth.store.read() as conn:
        count = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
    assert count == 1


async def test_the_sign_counter_moves_only_from_the_value_read(
    auth: Auth, clock: FakeClock
) -> None:
    user_id = await user(auth)
    passkey = await auth.passkeys.add(
        user_id=user_id,
        credential_id="cred",
        public_key="key",
        sign_count=1,
        name=None,
        transports=None,
        backed_up=False,
        now=clock(),
    )
    assert passkey is not None
    assert await auth.passkeys.record_use(passkey.id, 1, 2, clock())
    assert not await auth.passkeys.record_use(passkey.id, 1, 3, clock())  # a stale reader loses
    again = await auth.passkeys.add(
        user_id=user_id,
        credential_id="cred",
        public_key="key",
        sign_count=0,
        name=None,
        transports=None,
        backed_up=False,
        now=clock(),
    )
    assert again is None  # one account per credential


async def test_a_time_step_is_accepted_once_and_never_an_older_one(
    auth: Auth, clock: FakeClock
) -> None:
    user_id = await user(auth)
    assert await auth.factors.begin_totp(user_id, "sealed", clock())
    assert not await auth.factors.use_step(user_id, 10)  # not confirmed yet
    assert await auth.factors.confirm_totp(user_id, 10, clock(), ["h1", "h2"])
    assert not await auth.factors.use_step(user_id, 10)
    assert not await auth.factors.use_step(user_id, 9)
    assert await auth.factors.use_step(user_id, 11)
    assert not await auth.factors.begin_totp(user_id, "other", clock())  # confirmed stays
    assert await auth.factors.use_recovery_code(user_id, "h1", clock())
    assert not await auth.factors.use_recovery_code(user_id, "h1", clock())
    assert await auth.factors.recovery_codes_left(user_id) == 1
    assert await auth.factors.disable_totp(user_id)
    assert await auth.factors.totp(user_id) is None
    assert await auth.factors.recovery_codes_left(user_id) == 0


async def test_deleting_a_user_deletes_their_factors(auth: Auth, clock: FakeClock) -> None:
    from sqlalchemy import delete

    user_id = await user(auth)
    await auth.factors.begin_totp(user_id, "sealed", clock())
    await auth.factors.confirm_totp(user_id, 1, clock(), ["h"])
    await auth.passkeys.add(
        user_id=user_id,
        credential_id="c",
        public_key="k",
        sign_count=0,
        name=None,
        transports=None,
        backed_up=False,
        now=clock(),
    )
    users = auth.store.tables.users
    async with auth.store.transaction() as conn:
        await conn.execute(delete(users).where(users.c.id == user_id))
    assert await auth.factors.totp(user_id) is None
    assert await auth.factors.recovery_codes_left(user_id) == 0
    assert await auth.passkeys.of_user(user_id) == []
