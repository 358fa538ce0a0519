"""Rate limits of sign-in attempts: which buckets an attempt draws on, and the one place the
reserve / settle dance happens.

Buckets are token buckets kept in the database (:mod:`authbridge.store.rate_limits`) so every
instance shares them. An attempt takes one token from each of its buckets *before* the password
(or code) is checked, so concurrent guesses cannot overshoot a limit; when it succeeds, the
account's failures are forgotten and the client's token is given back::

    account = ctx.limiter.account("password", email, request)
    async with ctx.limiter.attempt(reset=[account], refund=ctx.limiter.clients(request)) as a:
        ...  # check the password; raise on failure
        a.succeed()

Client buckets are keyed by IP; IPv6 clients by their /64 (one host usually holds a whole /64).
A browser that has signed in to an account before (a signed "known device" cookie) draws on its
own account bucket, so failures from elsewhere cannot lock the owner out of their own browser.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .config import RateLimitConfig
from .passwords import HashingBusy
from .store import Store
from .store.rate_limits import RateLimitRepository

if TYPE_CHECKING:
    from .providers import SignInRequest

__all__ = ["Bucket", "RateLimiter", "client_key"]


@dataclass(frozen=True, slots=True)
class Bucket:
    """One rate-limited identity, e.g. ``Bucket("account:alice@example.com", 10)``."""

    identifier: str
    capacity: int


def client_key(ip: str) -> str:
    """The rate-limit key of a client address: IPv4 as is, IPv6 as its /64 network (an
    IPv4-mapped IPv6 address counts as the IPv4 address); anything else as given."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class _Attempt:
    __slots__ = ("succeeded",)

    def __init__(self) -> None:
        self.succeeded = False

    def succeed(self) -> None:
        """Mark the attempt successful."""
        self.succeeded = True


class RateLimiter:
    """Database-backed token buckets with continuous refill (see the module docstring)."""

    def __init__(
        self, store: Store, limits: RateLimitConfig, clock: Callable[[], datetime]
    ) -> None:
        self.limits = limits
        self._repo = RateLimitRepository(store, limits.period)
        self._clock = clock

    # -- which buckets ------------------------------------------------------------------------

    def account(self, provider: str, identifier: str, request: SignInRequest) -> Bucket:
        """The bucket of failed attempts against one account. A browser that signed in to this
        account before (``request.device`` names it) has a bucket of its own."""
        name = f"account:{provider}:{identifier}"
        if request.device_id is not None and request.device == f"{provider}:{identifier}":
            name += f":device:{request.device_id}"
        return Bucket(name, self.limits.account_attempts)

    def clients(self, request: SignInRequest) -> list[Bucket]:
        """The client's bucket of failed attempts (none without a client address)."""
        if not request.ip:
            return []
        return [Bucket(f"ip:{client_key(request.ip)}", self.limits.ip_attempts)]

    def sign_ups(self, request: SignInRequest) -> list[Bucket]:
        """The client's sign-up bucket: every sign-up spends one, success or not."""
        if not request.ip:
            return []
        return [Bucket(f"signup:ip:{client_key(request.ip)}", self.limits.sign_up_attempts)]

    # -- the dance ----------------------------------------------------------------------------

    @asynccontextmanager
    async def attempt(
        self,
        *,
        reset: Sequence[Bucket] = (),
        refund: Sequence[Bucket] = (),
        keep: Sequence[Bucket] = (),
        forget: Sequence[Bucket] = (),
    ) -> AsyncIterator[_Attempt]:
        """Take one token from every bucket on entry (all or none); if the block called
        ``succeed()``, forget ``reset``'s failures and give ``refund`` its token back when it
        exits (``keep`` keeps what it spent; ``forget`` is not spent, only emptied of failures on
        success). A block that raises settles nothing, except when hashing is saturated
        (:class:`~authbridge.passwords.HashingBusy`): that attempt never happened, and every
        token goes back.

        Raises:
            TooManyAttempts: a bucket is empty (on entry).
            StoreUnavailable: the database failed.
        """
        await self.consume([*reset, *refund, *keep])
        attempt = _Attempt()
        try:
            yield attempt
        except HashingBusy:
            # The attempt never happened (no password was checked): give every token back.
            await self._repo.settle([], [b.identifier for b in (*reset, *refund, *keep)])
            raise
        if attempt.succeeded:
            await self._repo.settle(
                [b.identifier for b in (*reset, *forget)], [b.identifier for b in refund]
            )

    async def consume(self, buckets: Sequence[Bucket]) -> None:
        """Take one attempt from every bucket, atomically, or none.

        Raises:
            TooManyAttempts: a bucket is empty; ``retry_after`` says when it has one token.
            StoreUnavailable: the database failed.
        """
        if buckets:
            await self._repo.take([(b.identifier, b.capacity) for b in buckets], self._clock())

    async def succeed(self, reset: Bucket, refund: Sequence[Bucket] = ()) -> None:
        """After a successful attempt: empty ``reset`` of failures, give ``refund`` its token back.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self._repo.settle([reset.identifier], [b.identifier for b in refund])

    async def remaining(self, bucket: Bucket) -> float:
        """Attempts left in ``bucket`` now (for tests and admin tools).

        Raises:
            StoreUnavailable: the database failed.
        """
        return await self._repo.level(bucket.identifier, bucket.capacity, self._clock())
