"""Password policy and hashing.

Hashes are argon2id (OWASP minimum by default) computed in a bounded pool of threads, so a storm
of sign-ins never blocks the event loop, and never builds an unbounded backlog either: past
``hash_queue`` jobs the hasher answers :class:`HashingBusy` (a ``TooManyAttempts``).

Convex Auth / Lucia scrypt hashes (``"<32-hex salt>:<128-hex key>"``) verify too and are upgraded
to argon2id on the next sign-in, so a Convex user table can be imported; :func:`wrap_scrypt_hash`
(``authbridge passwords wrap-imported``) turns them into ``scrypt-argon2id:<salt>:<argon2id of the
scrypt key>`` so the stored value is argon2id-protected too. Checking an imported hash costs one
scrypt *and* one argon2id; while any imported hash is present (:attr:`PasswordHasher.imported`),
every check - a native account, an unknown email's dummy - does exactly that work too, so timing
tells no kind of account apart from another or from none.
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
from .errors import InvalidPassword, TooManyAttempts

__all__ = [
    "WRAPPED_PREFIX",
    "HashingBusy",
    "PasswordHasher",
    "Verification",
    "default_hash_workers",
    "normalize_password",
    "scrypt_hash",
]

_SCRYPT_RE = re.compile(r"^([0-9a-fA-F]{32}):([0-9a-fA-F]{128})$")
WRAPPED_PREFIX = "scrypt-argon2id:"
"""Marks an imported scrypt hash wrapped in argon2id: ``scrypt-argon2id:<salt>:<argon2id>``."""
_WRAPPED_RE = re.compile(r"^scrypt-argon2id:([0-9a-fA-F]{32}):(\$argon2.*)$", re.S)
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
    return f"{salt}:{_scrypt_key(password, salt)}"


def _scrypt_key(password: str, salt: str) -> str:
    key = hashlib.scrypt(
        unicodedata.normalize("NFKC", password).encode("utf-8"),
        salt=salt.encode("ascii"),
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=SCRYPT_DKLEN,
        maxmem=_SCRYPT_MAXMEM,
    )
    return key.hex()


def is_imported_hash(stored: str) -> bool:
    """True for an imported scrypt hash, wrapped or not (every authbridge hash starts with
    ``$``)."""
    return not stored.startswith("$")


class HashingBusy(TooManyAttempts):
    """The hashing queue is full: the attempt was not made (its rate-limit tokens are given
    back). Answered like any ``TooManyAttempts``: 429 with ``Retry-After``."""


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
        # Jobs queued or running. A semaphore, because a job's slot is given back by the worker
        # thread when the job ends (or is cancelled), not by the coroutine that may have gone.
        self._slots = threading.BoundedSemaphore(policy.hash_queue or 16 * self._workers)
        self.imported = False
        """Imported scrypt hashes exist: every check then costs one scrypt and one argon2id
        (set by :class:`~authbridge.Auth` from the database, and whenever one is seen)."""
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
        if not self._slots.acquire(blocking=False):
            raise HashingBusy(retry_after=1.0)
        try:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._workers,
                    thread_name_prefix="authbridge-hash",
                    initializer=_lower_thread_priority,
                )
            job = self._executor.submit(functools.partial(fn, *args, **kwargs))
        except BaseException:
            self._slots.release()
            raise
        job.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(job)

    def hash_sync(self, password: str) -> str:
        """Hash a normalised password on the calling thread (CLI, imports)."""
        return self._argon2.hash(password)

    async def hash(self, password: str) -> str:
        """Hash a normalised password in the worker pool.

        Raises:
            HashingBusy: the hashing queue is full.
        """
        return await self._run(self.hash_sync, password)

    def verify_sync(self, stored: str, password: str) -> Verification:
        """Check ``password`` against an argon2 or imported scrypt hash (constant time).

        Costs one argon2id verification, plus one scrypt while imported hashes exist (see the
        module docstring). A malformed ``stored`` value never matches (it does not raise).
        """
        legacy = _SCRYPT_RE.match(stored)
        if legacy is not None:
            self.imported = True
            salt, key = legacy.groups()
            ok = hmac.compare_digest(self._scrypt(password, salt), key.lower())
            self._argon2_check(self._dummy_hash, password)  # the same work as any other check
            return Verification(ok, needs_rehash=True)
        wrapped = _WRAPPED_RE.match(stored)
        if wrapped is not None:
            self.imported = True
            salt, inner = wrapped.groups()
            return Verification(self._argon2_check(inner, self._scrypt(password, salt)), True)
        if self.imported:
            self._scrypt(password, _DUMMY_SALT)
        if not self._argon2_check(stored, password):
            return Verification(False, False)
        return Verification(True, self._argon2.check_needs_rehash(stored))

    def _scrypt(self, password: str, salt: str) -> str:
        """One scrypt derivation (hex key), Convex/Lucia parameters."""
        return _scrypt_key(password, salt)

    def _argon2_check(self, stored: str, password: str) -> bool:
        """One argon2 verification; False for a mismatch or a malformed hash."""
        try:
            return bool(self._argon2.verify(stored, password))
        except (VerificationError, InvalidHashError):
            return False

    def wrap_scrypt_hash(self, stored: str) -> str:
        """Wrap an imported ``<salt>:<key>`` scrypt hash as ``scrypt-argon2id:<salt>:<argon2id
        of the key>`` (on the calling thread: CLI and import scripts). Other values are returned
        unchanged.
        """
        legacy = _SCRYPT_RE.match(stored)
        if legacy is None:
            return stored
        salt, key = legacy.groups()
        return f"{WRAPPED_PREFIX}{salt}:{self._argon2.hash(key.lower())}"

    async def verify(self, stored: str, password: str) -> Verification:
        """Check a password in the worker pool.

        Raises:
            HashingBusy: the hashing queue is full.
        """
        return await self._run(self.verify_sync, stored, password)

    async def dummy_verify(self, password: str) -> None:
        """Spend the time of a real verification (for unknown accounts: no timing oracle).

        Raises:
            HashingBusy: the hashing queue is full.
        """
        await self.verify(self._dummy_hash, password)


_DUMMY_SALT = "0" * 32
"""Salt of the scrypt a native or unknown account runs while imported hashes exist."""


def _random_argon2id_hash(policy: PasswordConfig) -> str:
    def b64(n: int) -> str:
        return base64.b64encode(os.urandom(n)).decode("ascii").rstrip("=")

    return (
        f"$argon2id$v=19$m={policy.argon2_memory_kib},t={policy.argon2_time_cost},"
        f"p={policy.argon2_parallelism}${b64(16)}${b64(32)}"
    )
