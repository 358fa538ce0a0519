"""Password hashing (argon2id, off the event loop), policy, and Convex/Lucia scrypt hashes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from conftest import FAST_PASSWORDS, AuthFactory

from authbridge import Auth, InvalidPassword, PasswordConfig
from authbridge.passwords import PasswordHasher, normalize_password

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
