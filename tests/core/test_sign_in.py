"""Password sign-up / sign-in flows: error codes, the dummy verification, and rate limits shared
through the database."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from authbridge import (
    AccountExists,
    Auth,
    InvalidCredentials,
    InvalidEmail,
    InvalidParams,
    InvalidPassword,
    RateLimitConfig,
    SignInError,
    TooManyAttempts,
)
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory

from .conftest import all_rows, install_counting_hasher

PASSWORD = "correct horse battery"
WRONG = "wrong horse battery"


async def test_sign_up_creates_user_account_and_session(auth: Auth) -> None:
    result = await auth.sign_up_with_password("ada@example.com", PASSWORD)
    user = await auth.get_user(result.user_id)
    assert user is not None and user.email == "ada@example.com"
    assert user.is_anonymous is False
    [account] = await all_rows(auth, "auth_accounts")
    assert account["provider"] == "password"
    assert account["provider_account_id"] == "ada@example.com"
    assert account["secret"].startswith("$argon2id$") and PASSWORD not in account["secret"]
    assert auth.verify_token(result.tokens.access.token).user_id == result.user_id


async def test_emails_are_case_normalised(auth: Auth) -> None:
    result = await auth.sign_up_with_password("  Ada@Example.COM ", PASSWORD)
    user = await auth.get_user(result.user_id)
    assert user is not None and user.email == "ada@example.com"
    signed_in = await auth.sign_in_with_password("ADA@example.com", PASSWORD)
    assert signed_in.user_id == result.user_id
    with pytest.raises(AccountExists):
        await auth.sign_up_with_password("ada@EXAMPLE.com", PASSWORD)


async def test_sign_in_returns_a_new_session_each_time(auth: Auth) -> None:
    up = await auth.sign_up_with_password("ada@example.com", PASSWORD)
    again = await auth.sign_in_with_password("ada@example.com", PASSWORD)
    assert again.user_id == up.user_id and again.session_id != up.session_id


async def test_unknown_email_and_wrong_password_fail_identically(auth: Auth) -> None:
    await auth.sign_up_with_password("ada@example.com", PASSWORD)
    errors: list[SignInError] = []
    for email, password in [("ada@example.com", WRONG), ("nobody@example.com", PASSWORD)]:
        with pytest.raises(InvalidCredentials) as caught:
            await auth.sign_in_with_password(email, password)
        errors.append(caught.value)
    wrong, unknown = errors
    assert (wrong.code, wrong.status, str(wrong)) == (unknown.code, unknown.status, str(unknown))
    assert wrong.code == "InvalidCredentials" and wrong.status == 401


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("nobody@example.com", PASSWORD),
        ("nobody@example.com", "short"),
        ("not-an-email", PASSWORD),
        ("nobody@example.com", "x" * 2000),
    ],
)
async def test_unknown_accounts_still_run_one_password_verification(
    auth: Auth, email: str, password: str
) -> None:
    hasher = install_counting_hasher(auth)
    with pytest.raises(InvalidCredentials):
        await auth.sign_in_with_password(email, password)
    assert len(hasher.verified) == 1
    assert hasher.verified[0].startswith("$argon2id$v=19$m=1024,t=1,p=1$")  # the configured cost
    assert hasher.hashed == 0


async def test_wrong_password_runs_exactly_one_verification(auth: Auth) -> None:
    await auth.sign_up_with_password("ada@example.com", PASSWORD)
    hasher = install_counting_hasher(auth)
    with pytest.raises(InvalidCredentials):
        await auth.sign_in_with_password("ada@example.com", WRONG)
    assert len(hasher.verified) == 1 and hasher.hashed == 0


async def test_sign_up_for_a_taken_email_is_account_exists(auth: Auth) -> None:
    await auth.sign_up_with_password("ada@example.com", PASSWORD)
    with pytest.raises(AccountExists) as caught:
        await auth.sign_up_with_password("ada@example.com", "another password")
    assert (caught.value.code, caught.value.status) == ("AccountExists", 409)


async def test_concurrent_sign_ups_for_one_email_create_one_account(
    auth_factory: AuthFactory,
) -> None:
    first, second = await auth_factory(), await auth_factory()
    outcomes = await asyncio.gather(
        *(
            (first if i % 2 else second).sign_up_with_password("race@example.com", PASSWORD)
            for i in range(6)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(isinstance(o, AccountExists) for o in outcomes if isinstance(o, BaseException))
    assert len(await all_rows(first, "users")) == 1


@pytest.mark.parametrize("password", ["", "short", "1234567", "x" * 1025])
async def test_sign_up_with_a_policy_breaking_password_is_invalid_password(
    auth: Auth, password: str
) -> None:
    with pytest.raises((InvalidPassword, InvalidParams)) as caught:
        await auth.sign_up_with_password("ada@example.com", password)
    assert caught.value.code == ("InvalidParams" if password == "" else "InvalidPassword")
    assert await all_rows(auth, "users") == []


@pytest.mark.parametrize(
    "email", ["ada", "ada@", "@example.com", "a b@example.com", "a@b@c", "x" * 65 + "@e.com"]
)
async def test_sign_up_with_an_implausible_email_is_invalid_email(auth: Auth, email: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        await auth.sign_up_with_password(email, PASSWORD)
    assert caught.value.code == "InvalidEmail"


@pytest.mark.parametrize(
    ("provider", "params"),
    [
        ("github", {"flow": "signIn", "email": "ada@example.com", "password": PASSWORD}),
        ("password", {"flow": "magic", "email": "ada@example.com", "password": PASSWORD}),
        ("password", {"email": "ada@example.com", "password": PASSWORD}),
        ("password", {"flow": "signIn", "password": PASSWORD}),
        ("password", {"flow": "signIn", "email": "ada@example.com"}),
        ("password", {"flow": "signIn", "email": ["ada@example.com"], "password": PASSWORD}),
        ("password", {"flow": "signIn", "email": "ada@example.com", "password": 12345678}),
    ],
)
async def test_malformed_sign_in_requests_are_invalid_params(
    auth: Auth, provider: str, params: dict[str, Any]
) -> None:
    with pytest.raises(InvalidParams) as caught:
        await auth.sign_in(provider, params)
    assert caught.value.code == "InvalidParams"


@pytest.mark.parametrize(
    ("email", "password", "sign_up_error"),
    [
        ("a\x00@example.com", PASSWORD, InvalidEmail),
        ("\udcff@example.com", PASSWORD, InvalidEmail),
        ("ada\u202e@example.com", PASSWORD, InvalidEmail),
        ("ada@example.com", "\udcff" + PASSWORD, InvalidPassword),
    ],
    ids=["nul-in-email", "surrogate-in-email", "bidi-control-in-email", "surrogate-in-password"],
)
async def test_hostile_characters_get_a_clear_error_not_a_database_failure(
    auth: Auth, email: str, password: str, sign_up_error: type[SignInError]
) -> None:
    """JSON can carry NUL and lone surrogates; PostgreSQL cannot store NUL and UTF-8 cannot
    encode surrogates. Each must be a 4xx code, never StoreUnavailable or a crash."""
    with pytest.raises(sign_up_error):
        await auth.sign_up_with_password(email, password, ip="203.0.113.1")
    with pytest.raises(InvalidCredentials):
        await auth.sign_in_with_password(email, password, ip="203.0.113.1")


# -- rate limits ------------------------------------------------------------------------------


async def fail(
    auth: Auth, times: int, email: str = "ada@example.com", ip: str | None = None
) -> None:
    for _ in range(times):
        with pytest.raises(InvalidCredentials):
            await auth.sign_in_with_password(email, WRONG, ip=ip)


async def test_eleventh_failed_attempt_within_an_hour_is_too_many_attempts(
    auth: Auth,
) -> None:
    await auth.sign_up_with_password("ada@example.com", PASSWORD)
    await fail(auth, 10)
    for password in (WRONG, PASSWORD):  # even the right password is refused now
        with pytest.raises(TooManyAttempts) as caught:
            await auth.sign_in_with_password("ada@example.com", password)
    assert (caught.value.code, caught.value.status) == ("TooManyAttempts", 429)
    assert caught.value.retry_after == pytest.approx(360)


async def test_the_account_limit_applies_to_unknown_accounts_too(auth: Auth) -> None:
    await fail(auth, 10, email="ghost@example.com")
    with pytest.raises(TooManyAttempts):
        await auth.sign_in_with_password("ghost@example.com", WRONG)


@pytest.mark.parametrize(
    ("elapsed", "allowed"),
    [(timedelta(seconds=360) - timedelta(milliseconds=1), False), (timedelta(seconds=360), True)],
)
async def test_account_bucket_refills_one_attempt_every_six_minutes(
    auth: Auth, clock: FakeClock, elapsed: timedelta, allowed: bool
) -> None:
    await auth.sign_up_with_password("ada@example.com", PASSWORD)
    await fail(auth, 10)
    clock.advance(elapsed)
    if allowed:
        assert (await auth.sign_in_with_password("ada@example.com", PASSWORD)).user_id
    else:
        with pytest.raises(TooManyAttempts) as caught:
            await auth.sign_in_with_password("ada@example.com", PASSWORD)
        assert caught.value.retry_after == pytest.approx(0.001, abs=1e-6)


@pytest.mark.parametrize(
    ("capacity", "period"), [(10, 3600), (3, 60), (64, 60), (100, 3600), (9, 86400)]
)
async def test_refill_boundary_is_exact_for_any_capacity_and_period(
    auth_factory: AuthFactory, clock: FakeClock, capacity: int, period: int
) -> None:
    """One attempt comes back after exactly period / capacity, despite float rounding."""
    auth = await auth_factory(
        rate_limit=RateLimitConfig(account_attempts=capacity, period=timedelta(seconds=period))
    )
    await fail(auth, capacity, email="ghost@example.com")
    clock.advance(timedelta(seconds=period / capacity))
    await fail(auth, 1, email="ghost@example.com")
    with pytest.raises(TooManyAttempts):
        await auth.sign_in_with_password("ghost@example.com", WRONG)


async def test_refill_is_continuous(auth: Auth, clock: FakeClock) -> None:
    await auth.sign_up_with_password("ada@example.com", PASSWORD)
    await fail(auth, 10)
    clock.advance(timedelta(minutes=30))  # half the period: five attempts back
    await fail(auth, 5)
    with pytest.raises(TooManyAttempts):
        await auth.sign_in_with_password("ada@example.com", WRONG)
    clock.advance(timedelta(hours=2))  # a full bucket, never more than the capacity
    await fail(auth, 10)
    with pytest.raises(TooManyAttempts):
        await auth.sign_in_with_password("ada@example.com", WRONG)


async def test_success_resets_the_account_bucket(auth: Auth) -> None:
    await auth.sign_up_with_password("ada@example.com", PASSWORD)
    await fail(auth, 9)
    await auth.sign_in_with_password("ada@example.com", PASSWORD)
    await fail(auth, 10)
    with pytest.raises(TooManyAttempts):
        await auth.sign_in_with_password("ada@example.com", PASSWORD)


async def test_per_ip_bucket_is_shared_across_accounts(auth_factory: AuthFactory) -> None:
    auth = await auth_factory(rate_limit=RateLimitConfig(ip_attempts=5))
    for i in range(5):
        await fail(auth, 1, email=f"user{i}@example.com", ip="203.0.113.7")
    with pytest.raises(TooManyAttempts):
        await auth.sign_in_with_password("fresh@example.com", WRONG, ip="203.0.113.7")
    with pytest.raises(TooManyAttempts):
        await auth.sign_up_with_password("fresh@example.com", PASSWORD, ip="203.0.113.7")
    # Another client is unaffected.
    await fail(auth, 1, email="fresh@example.com", ip="198.51.100.1")
    assert (
        await auth.sign_up_with_password("new@example.com", PASSWORD, ip="198.51.100.1")
    ).user_id


async def test_successful_attempts_do_not_drain_the_ip_bucket(auth_factory: AuthFactory) -> None:
    auth = await auth_factory(rate_limit=RateLimitConfig(ip_attempts=3))
    for i in range(5):
        await auth.sign_up_with_password(f"user{i}@example.com", PASSWORD, ip="203.0.113.8")
        await auth.sign_in_with_password(f"user{i}@example.com", PASSWORD, ip="203.0.113.8")


async def test_failed_sign_ups_count_against_the_ip_bucket(auth_factory: AuthFactory) -> None:
    auth = await auth_factory(rate_limit=RateLimitConfig(ip_attempts=3))
    await auth.sign_up_with_password("ada@example.com", PASSWORD, ip="203.0.113.9")
    for _ in range(3):
        with pytest.raises(AccountExists):
            await auth.sign_up_with_password("ada@example.com", PASSWORD, ip="203.0.113.9")
    with pytest.raises(TooManyAttempts):
        await auth.sign_up_with_password("bob@example.com", PASSWORD, ip="203.0.113.9")


async def test_rate_limits_are_shared_between_instances(auth_factory: AuthFactory) -> None:
    first, second = await auth_factory(), await auth_factory()
    await first.sign_up_with_password("ada@example.com", PASSWORD)
    await fail(first, 5)
    await fail(second, 5)
    for auth in (first, second):
        with pytest.raises(TooManyAttempts):
            await auth.sign_in_with_password("ada@example.com", PASSWORD)


async def test_concurrent_guesses_cannot_overshoot_the_limit(auth_factory: AuthFactory) -> None:
    first, second = await auth_factory(), await auth_factory()
    await first.sign_up_with_password("ada@example.com", PASSWORD)
    outcomes = await asyncio.gather(
        *(
            (first if i % 2 else second).sign_in_with_password("ada@example.com", WRONG)
            for i in range(20)
        ),
        return_exceptions=True,
    )
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds.count("InvalidCredentials") == 10
    assert kinds.count("TooManyAttempts") == 10
