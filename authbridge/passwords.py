"""Password policy and hashing.

Hashes are argon2id (OWASP minimum by default) computed in a dedicated thread pool, so a storm of
sign-ins never blocks the event loop. Convex Auth / Lucia scrypt hashes
(``"<32-hex salt>:<128-hex key>"``) verify too and are upgraded to argon2id on the next sign-in,
so a Convex user table can be imported.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import os
import re
import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError

from .config import PasswordConfig
from .errors import InvalidPassword

__all__ = [
    "PasswordHasher",
    "Verification",
    "default_hash_workers",
    "normalize_password",
    "scrypt_hash",
]

_SCRYPT_RE = re.compile(r"^([0-9a-fA-F]{32}):([0-9a-fA-F]{128})$")
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 16384, 16, 1, 64
_SCRYPT_MAXMEM = 64 * 1024 * 1024 + 1024 * 1024
_P = ParamSpec("_P")
_T = TypeVar("_T")


def normalize_password(password: str, policy: PasswordConfig) -> str:
    """NFKC-normalise ``password`` and check it against the policy.

    Raises:
        InvalidPassword: too short (in characters), too large (in UTF-8 bytes), or not encodable
            as UTF-8.
    """
    normalized = unicodedata.normalize("NFKC", password)
    try:
        size = len(normalized.encode("utf-8"))
    except UnicodeEncodeError as exc:  # lone surrogates, e.g. from a JSON "\udcff" escape
        raise InvalidPassword("password is not valid Unicode") from exc
    if size > policy.max_bytes:
        raise InvalidPassword(f"password longer than {policy.max_bytes} bytes")
    if len(normalized) < policy.min_length:
        raise InvalidPassword(f"password shorter than {policy.min_length} characters")
    return normalized


def scrypt_hash(password: str, salt_hex: str | None = None) -> str:
    """A Convex/Lucia-format scrypt hash (for imports and tests; authbridge writes argon2id)."""
    salt = salt_hex if salt_hex is not None else os.urandom(16).hex()
    key = hashlib.scrypt(
        unicodedata.normalize("NFKC", password).encode("utf-8"),
        salt=salt.encode("ascii"),
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=SCRYPT_DKLEN,
        maxmem=_SCRYPT_MAXMEM,
    )
    return f"{salt}:{key.hex()}"


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of checking a password against a stored hash."""

    ok: bool
    """The password matches."""
    needs_rehash: bool
    """The hash uses other parameters or a legacy scheme; store a new one."""


def default_hash_workers() -> int:
    """Hashing threads when not configured: one per core. (Leaving the event loop a core of its
    own was measured too: it cost 40 % of hashing throughput on 2 cores for no measurable gain
    in the loop's p99; the lower thread priority below is what helps.)"""
    return os.cpu_count() or 1


def _lower_thread_priority() -> None:
    """Hashing threads yield the CPU to the event loop's thread (Linux: per-thread nice), so a
    sign-in storm cannot starve the requests being served."""
    # Platforms without per-thread priorities simply keep the default.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class PasswordHasher:
    """argon2id hashing and verification, off the event loop.

    The worker threads start on first use and stop in :meth:`close`; a closed hasher starts them
    again when used (an :class:`~authbridge.Auth` may be closed and reopened).
    """

    def __init__(self, policy: PasswordConfig) -> None:
        self.policy = policy
        self._argon2 = Argon2Hasher(
            time_cost=policy.argon2_time_cost,
            memory_cost=policy.argon2_memory_kib,
            parallelism=policy.argon2_parallelism,
            type=Type.ID,
        )
        self._workers = policy.hash_workers or default_hash_workers()
        self._executor: ThreadPoolExecutor | None = None
        # Unknown accounts are checked against this: a well-formed hash with the configured
        # parameters and random salt and digest, so verifying costs exactly one real verification,
        # never matches, and needs no hashing up front.
        self._dummy_hash = _random_argon2id_hash(policy)

    def close(self) -> None:
        """Stop the hashing threads."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._workers,
                thread_name_prefix="authbridge-hash",
                initializer=_lower_thread_priority,
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def hash_sync(self, password: str) -> str:
        """Hash a normalised password on the calling thread (CLI, imports)."""
        return self._argon2.hash(password)

    async def hash(self, password: str) -> str:
        """Hash a normalised password in the worker pool."""
        return await self._run(self.hash_sync, password)

    def verify_sync(self, stored: str, password: str) -> Verification:
        """Check ``password`` against an argon2 or legacy scrypt hash (constant time).

        A malformed ``stored`` value never matches (it does not raise).
        """
        legacy = _SCRYPT_RE.match(stored)
        if legacy is not None:
            salt, key = legacy.groups()
            candidate = scrypt_hash(password, salt).partition(":")[2]
            return Verification(hmac.compare_digest(candidate, key.lower()), needs_rehash=True)
        try:
            self._argon2.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return Verification(False, False)
        return Verification(True, self._argon2.check_needs_rehash(stored))

    async def verify(self, stored: str, password: str) -> Verification:
        """Check a password in the worker pool."""
        return await self._run(self.verify_sync, stored, password)

    async def dummy_verify(self, password: str) -> None:
        """Spend the time of a real verification (for unknown accounts: no timing oracle)."""
        await self.verify(self._dummy_hash, password)


def _random_argon2id_hash(policy: PasswordConfig) -> str:
    def b64(n: int) -> str:
        return base64.b64encode(os.urandom(n)).decode("ascii").rstrip("=")

    return (
        f"$argon2id$v=19$m={policy.argon2_memory_kib},t={policy.argon2_time_cost},"
        f"p={policy.argon2_parallelism}${b64(16)}${b64(32)}"
    )
