"""Password hashing (argon2id, off the event loop), policy, and Convex/Lucia scrypt hashes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time

import pytest
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type

from authbridge import Auth, InvalidPassword, PasswordConfig
from authbridge.passwords import PasswordHasher, normalize_password
from tests.toolkit.engines import FAST_PASSWORDS, AuthFactory

from .conftest import all_rows, install_counting_hasher

POLICY = PasswordConfig()


def convex_scrypt_hash(password: str) -> str:
    """What Convex Auth (Lucia's Scrypt) stores, computed independently of authbridge."""
    salt = os.urandom(16).hex()
    key = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt.encode("utf-8"),
        n=16384,
        r=16,
        p=1,
        dklen=64,
        maxmem=128 * 1024 * 1024,
    )
    return f"{salt}:{key.hex()}"


async def test_default_hash_is_argon2id_with_owasp_parameters() -> None:
    hasher = PasswordHasher(POLICY)
    try:
        encoded = await hasher.hash("correct horse battery")
        assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert (await hasher.verify(encoded, "correct horse battery")).ok
    finally:
        hasher.close()


async def test_hashing_runs_off_the_event_loop() -> None:
    """While a full-cost hash runs, the loop keeps ticking (a blocked loop would tick ~once)."""
    hasher = PasswordHasher(PasswordConfig(argon2_memory_kib=64 * 1024, argon2_time_cost=3))
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    try:
        await hasher.hash("correct horse battery")
    finally:
        done = True
        await task
        hasher.close()
    elapsed = time.perf_counter() - started
    assert elapsed > 0.01  # the hash did real work...
    assert ticks > 50  # ...while the loop kept running other tasks


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "shorter"),
        ("1234567", "shorter"),
        ("x" * 1025, "longer"),
        ("é" * 513, "longer"),  # 513 characters, 1,026 bytes
    ],
)
def test_policy_rejects_short_and_oversized_passwords(password: str, problem: str) -> None:
    with pytest.raises(InvalidPassword, match=problem):
        normalize_password(password, POLICY)


@pytest.mark.parametrize("password", ["12345678", "x" * 1024, "é" * 512, "パスワードパスワード"])
def test_policy_accepts_passwords_within_limits(password: str) -> None:
    assert normalize_password(password, POLICY) == password


def test_passwords_are_nfkc_normalised() -> None:
    # U+FB01 (the "fi" ligature) and full-width digits normalise to plain ASCII under NFKC.
    assert normalize_password("\ufb01ne\uff11\uff12\uff13\uff14\uff15", POLICY) == "fine12345"
    # Length is counted after normalisation: "ﬁ" is one character before, two after.
    assert normalize_password("\ufb01" * 4, POLICY) == "fi" * 4


async def test_nfkc_equivalent_passwords_sign_in(auth_factory: AuthFactory) -> None:
    auth = await auth_factory()
    await auth.sign_up_with_password("nfkc@example.com", "\ufb01ne-password")
    assert (await auth.sign_in_with_password("nfkc@example.com", "fine-password")).user_id


def test_convex_scrypt_hashes_verify_and_ask_for_a_rehash() -> None:
    hasher = PasswordHasher(POLICY)
    stored = convex_scrypt_hash("correct horse battery")
    right = hasher.verify_sync(stored, "correct horse battery")
    wrong = hasher.verify_sync(stored, "wrong horse battery")
    upper = hasher.verify_sync(stored.upper(), "correct horse battery")
    hasher.close()
    assert (right.ok, right.needs_rehash) == (True, True)
    assert wrong.ok is False
    assert upper.ok is False  # the salt is the hex text itself: its case matters


@pytest.mark.parametrize(
    "stored",
    ["", "not a hash", "abc:def", "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA", "$2b$12$" + "a" * 53],
)
def test_malformed_stored_hashes_never_match(stored: str) -> None:
    hasher = PasswordHasher(FAST_PASSWORDS)
    assert hasher.verify_sync(stored, "whatever-password").ok is False
    hasher.close()


async def test_imported_convex_hash_signs_in_and_is_rehashed_to_argon2id(
    auth_factory: AuthFactory,
) -> None:
    auth = await auth_factory()
    user_id = await import_user(auth, "convex@example.com", convex_scrypt_hash("imported-pass"))
    result = await auth.sign_in_with_password("convex@example.com", "imported-pass")
    assert result.user_id == user_id
    [account] = await all_rows(auth, "auth_accounts")
    assert account["secret"].startswith("$argon2id$")
    # The new hash works, and the next sign-in does not rehash again.
    hasher = install_counting_hasher(auth)
    await auth.sign_in_with_password("convex@example.com", "imported-pass")
    assert hasher.hashed == 0


async def test_wrong_password_for_an_imported_hash_leaves_it_alone(
    auth_factory: AuthFactory,
) -> None:
    from authbridge import InvalidCredentials

    auth = await auth_factory()
    stored = convex_scrypt_hash("imported-pass")
    await import_user(auth, "convex@example.com", stored)
    with pytest.raises(InvalidCredentials):
        await auth.sign_in_with_password("convex@example.com", "not-the-pass")
    [account] = await all_rows(auth, "auth_accounts")
    assert account["secret"] == stored


@pytest.mark.parametrize(
    ("params", "rehashed"),
    [
        ({"memory_cost": 2048, "time_cost": 1, "parallelism": 1}, True),
        ({"memory_cost": 1024, "time_cost": 2, "parallelism": 1}, True),
        ({"memory_cost": 1024, "time_cost": 1, "parallelism": 2}, True),
        ({"memory_cost": 1024, "time_cost": 1, "parallelism": 1, "type": Type.I}, True),
        ({"memory_cost": 1024, "time_cost": 1, "parallelism": 1}, False),
    ],
)
async def test_argon2_hashes_with_other_parameters_are_upgraded_at_sign_in(
    auth_factory: AuthFactory, params: dict[str, object], rehashed: bool
) -> None:
    auth = await auth_factory()  # FAST_PASSWORDS: m=1024, t=1, p=1
    old = Argon2Hasher(**params).hash("argon-password")  # type: ignore[arg-type]
    await import_user(auth, "argon@example.com", old)
    await auth.sign_in_with_password("argon@example.com", "argon-password")
    [account] = await all_rows(auth, "auth_accounts")
    if rehashed:
        assert account["secret"] != old
        assert account["secret"].startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    else:
        assert account["secret"] == old


async def test_a_closed_hasher_starts_its_threads_again() -> None:
    hasher = PasswordHasher(FAST_PASSWORDS)
    first = await hasher.hash("password-1")
    hasher.close()
    assert (await hasher.verify(first, "password-1")).ok
    hasher.close()


async def import_user(auth: Auth, email: str, secret: str) -> str:
    """Insert a user with a password hash, as an import from another system would."""
    from authbridge.store import new_id

    t = auth.store.tables
    user_id = new_id()
    async with auth.store.transaction() as conn:
        await conn.execute(
            t.users.insert().values(id=user_id, created_at=auth.clock(), email=email)
        )
        await conn.execute(
            t.accounts.insert().values(
                id=new_id(),
                created_at=auth.clock(),
                user_id=user_id,
                provider="password",
                provider_account_id=email,
                secret=secret,
            )
        )
    return user_id


# -- imported hashes cost what every other check costs (issue 11 item 7) -----------------------


async def test_imported_accounts_unknown_emails_and_native_accounts_do_the_same_work(
    auth_factory: AuthFactory,
) -> None:
    """Timing must not tell an imported account from an unknown email (or a native account):
    while imported hashes exist, every check is one scrypt plus one argon2id."""
    from authbridge import InvalidCredentials

    first = await auth_factory()
    await import_user(first, "convex@example.com", convex_scrypt_hash("imported-pass"))
    await first.sign_up_with_password("native@example.com", "native-password")
    auth = await auth_factory()  # an instance starting with imported hashes in the database
    hasher = install_counting_hasher(auth)
    work = {}
    for email in ("nobody@example.com", "convex@example.com", "native@example.com"):
        with pytest.raises(InvalidCredentials):
            await auth.sign_in_with_password(email, "a-wrong-password")
        work[email] = hasher.work()
    assert set(work.values()) == {(1, 1)}, work


async def test_an_imported_hash_seen_after_startup_switches_to_equal_work(
    auth_factory: AuthFactory,
) -> None:
    from authbridge import InvalidCredentials

    auth = await auth_factory()
    hasher = install_counting_hasher(auth)
    await import_user(auth, "convex@example.com", convex_scrypt_hash("imported-pass"))
    for email in ("convex@example.com", "nobody@example.com"):
        with pytest.raises(InvalidCredentials):
            await auth.sign_in_with_password(email, "a-wrong-password")
        assert hasher.work() == (1, 1), email


async def test_without_imported_hashes_a_check_is_one_argon2_verification(
    auth_factory: AuthFactory,
) -> None:
    from authbridge import InvalidCredentials

    auth = await auth_factory()
    await auth.sign_up_with_password("native@example.com", "native-password")
    hasher = install_counting_hasher(auth)
    for email in ("nobody@example.com", "native@example.com"):
        with pytest.raises(InvalidCredentials):
            await auth.sign_in_with_password(email, "a-wrong-password")
        assert hasher.work() == (0, 1), email


async def test_once_every_imported_hash_is_rehashed_checks_are_argon2_only_again(
    auth_factory: AuthFactory,
) -> None:
    first = await auth_factory()
    await import_user(first, "convex@example.com", convex_scrypt_hash("imported-pass"))
    await first.sign_in_with_password("convex@example.com", "imported-pass")  # rehashed
    auth = await auth_factory()
    assert auth.passwords.imported is False


async def test_a_wrapped_imported_hash_signs_in_and_is_rehashed(
    auth_factory: AuthFactory,
) -> None:
    from authbridge import InvalidCredentials

    auth = await auth_factory()
    wrapped = auth.passwords.wrap_scrypt_hash(convex_scrypt_hash("imported-pass"))
    assert wrapped.startswith("scrypt-argon2id:") and "$argon2id$" in wrapped
    await import_user(auth, "convex@example.com", wrapped)
    hasher = install_counting_hasher(auth)
    with pytest.raises(InvalidCredentials):
        await auth.sign_in_with_password("convex@example.com", "not-the-pass")
    assert hasher.work() == (1, 1)
    [account] = await all_rows(auth, "auth_accounts")
    assert account["secret"] == wrapped
    await auth.sign_in_with_password("convex@example.com", "imported-pass")
    [account] = await all_rows(auth, "auth_accounts")
    assert account["secret"].startswith("$argon2id$")


def test_wrapping_leaves_anything_but_a_raw_scrypt_hash_alone() -> None:
    hasher = PasswordHasher(FAST_PASSWORDS)
    native = hasher.hash_sync("native-password")
    assert hasher.wrap_scrypt_hash(native) == native
    assert hasher.wrap_scrypt_hash("abc:def") == "abc:def"
    hasher.close()


# -- the hashing queue is bounded (issue 11 item 6) --------------------------------------------


class GatedHasher(PasswordHasher):
    """A real hasher whose argon2 checks wait for a gate (so a test can hold the queue full)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gate = threading.Event()

    def _argon2_check(self, stored: str, password: str) -> bool:
        assert self.gate.wait(timeout=30), "the test never opened the gate"
        return super()._argon2_check(stored, password)


async def test_a_full_hashing_queue_answers_too_many_attempts_and_refunds_the_tokens(
    auth_factory: AuthFactory,
) -> None:
    from authbridge import InvalidCredentials, RateLimitConfig, TooManyAttempts
    from authbridge.passwords import HashingBusy
    from authbridge.ratelimit import Bucket

    policy = PasswordConfig(
        argon2_memory_kib=1024, argon2_time_cost=1, hash_workers=1, hash_queue=2
    )
    auth = await auth_factory(password=policy, rate_limit=RateLimitConfig(account_attempts=10))
    await auth.sign_up_with_password("ada@example.com", "ada-password")
    gated = GatedHasher(policy)
    auth.passwords.close()
    auth.passwords = gated

    async def guess() -> None:
        await auth.sign_in_with_password("ada@example.com", "wrong-password", ip="203.0.113.5")

    tasks = [asyncio.create_task(guess()) for _ in range(5)]
    for _ in range(1000):  # bounded: until the three that found the queue full have answered
        if sum(t.done() for t in tasks) >= 3:
            break
        await asyncio.sleep(0.01)
    gated.gate.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    busy = [o for o in outcomes if isinstance(o, HashingBusy)]
    assert len(busy) == 3
    assert all(isinstance(o, TooManyAttempts) and o.retry_after > 0 for o in busy)
    assert sum(isinstance(o, InvalidCredentials) for o in outcomes) == 2
    # Only the two guesses that were checked cost the account (and the client) anything.
    limits = auth.rate_limiter
    assert await limits.remaining(Bucket("account:password:ada@example.com", 10)) == 8
    assert await limits.remaining(Bucket("ip:203.0.113.5", 100)) == 98
