"""Sign-in providers. A provider turns sign-in params into a user id; sessions are shared.

The password provider is the first; OAuth, one-time codes, magic links and anonymous users plug
into the same :class:`Provider` protocol (a provider may later also return "started" or "redirect"
steps, which is why the wire format names the provider).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from .errors import (
    AccountExists,
    InvalidCredentials,
    InvalidEmail,
    InvalidParams,
    InvalidPassword,
)
from .passwords import normalize_password
from .ratelimit import Bucket
from .store import new_id

if TYPE_CHECKING:
    from .engine import Auth

__all__ = ["PasswordProvider", "Provider", "SignInContext", "normalize_email"]

_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


def normalize_email(email: str) -> str:
    """Trim and lower-case an email address.

    Raises:
        InvalidEmail: it does not look like ``local@domain``.
    """
    normalized = email.strip().lower()
    # Control characters (NUL cannot even be stored by PostgreSQL) and lone surrogates (which
    # JSON can carry but UTF-8 cannot encode) are never part of an address.
    if (
        len(normalized) > 320
        or not normalized.isprintable()
        or _EMAIL_RE.match(normalized) is None
        or not _is_utf8(normalized)
    ):
        raise InvalidEmail("not an email address")
    return normalized


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class SignInContext:
    """Facts about the request making the attempt."""

    ip: str | None = None
    """Client IP (rate limiting, the sessions list)."""
    user_agent: str | None = None
    """The browser's User-Agent (the sessions list)."""


class Provider(Protocol):
    """Authenticates sign-in params and returns the user id to start a session for."""

    id: str
    """The ``provider`` value of the sign-in wire format."""

    async def authenticate(
        self, auth: Auth, params: Mapping[str, Any], context: SignInContext
    ) -> str:
        """Return the user id, or raise a :class:`~authbridge.errors.SignInError`."""
        ...


def _str_param(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise InvalidParams(f"params.{name} is required")
    if not isinstance(value, str):
        raise InvalidParams(f"params.{name} must be a string")
    return value


class PasswordProvider:
    """Email + password, with ``flow`` = ``"signIn"`` or ``"signUp"`` (Convex's ``Password``)."""

    id = "password"

    async def authenticate(
        self, auth: Auth, params: Mapping[str, Any], context: SignInContext
    ) -> str:
        """Sign in or sign up.

        Raises:
            InvalidParams: missing/mistyped fields or an unknown flow.
            InvalidEmail, InvalidPassword: sign-up input breaks the rules.
            AccountExists: sign-up for a taken email.
            InvalidCredentials: sign-in with an unknown email or a wrong password.
            TooManyAttempts: a rate limit is exhausted.
            StoreUnavailable: the database failed.
        """
        flow = params.get("flow")
        email_raw = _str_param(params, "email")
        password = _str_param(params, "password")
        if flow == "signIn":
            return await self._sign_in(auth, email_raw, password, context)
        if flow == "signUp":
            return await self._sign_up(auth, email_raw, password, context)
        raise InvalidParams("params.flow must be 'signIn' or 'signUp'")

    def _buckets(
        self, auth: Auth, email: str, context: SignInContext
    ) -> tuple[Bucket, list[Bucket]]:
        limits = auth.config.rate_limit
        account = Bucket(f"account:{self.id}:{email}", limits.account_attempts)
        clients = [Bucket(f"ip:{context.ip}", limits.ip_attempts)] if context.ip else []
        return account, clients

    async def _sign_in(
        self, auth: Auth, email_raw: str, password: str, context: SignInContext
    ) -> str:
        try:
            email = normalize_email(email_raw)
        except InvalidEmail:
            # No account can have this address; still rate-limit it, under a name that is safe
            # to store whatever bytes it holds.
            raw = email_raw.strip().lower().encode("utf-8", "surrogatepass")
            email = "invalid:" + hashlib.sha256(raw).hexdigest()
        account_bucket, client_buckets = self._buckets(auth, email, context)
        await auth.rate_limiter.consume([account_bucket, *client_buckets])
        accounts = auth.store.tables.accounts
        async with auth.store.read() as conn:
            row = (
                await conn.execute(
                    select(accounts.c.id, accounts.c.user_id, accounts.c.secret).where(
                        (accounts.c.provider == self.id) & (accounts.c.provider_account_id == email)
                    )
                )
            ).one_or_none()
        try:
            candidate = normalize_password(
                password, dataclasses.replace(auth.config.password, min_length=0)
            )
        except InvalidPassword:
            candidate = None
        if row is None or row.secret is None or candidate is None:
            await auth.passwords.dummy_verify(candidate or "")
            raise InvalidCredentials()
        result = await auth.passwords.verify(row.secret, candidate)
        if not result.ok:
            raise InvalidCredentials()
        if result.needs_rehash:
            new_secret = await auth.passwords.hash(candidate)
            async with auth.store.transaction() as conn:
                await conn.execute(
                    update(accounts).where(accounts.c.id == row.id).values(secret=new_secret)
                )
        await auth.rate_limiter.succeed(account_bucket, client_buckets)
        return str(row.user_id)

    async def _sign_up(
        self, auth: Auth, email_raw: str, password: str, context: SignInContext
    ) -> str:
        email = normalize_email(email_raw)
        normalized = normalize_password(password, auth.config.password)
        _, client_buckets = self._buckets(auth, email, context)
        if client_buckets:
            await auth.rate_limiter.consume(client_buckets)
        t = auth.store.tables
        async with auth.store.read() as conn:
            taken = (
                await conn.execute(
                    select(t.accounts.c.id).where(
                        (t.accounts.c.provider == self.id)
                        & (t.accounts.c.provider_account_id == email)
                    )
                )
            ).first()
        if taken is not None:
            raise AccountExists()
        secret = await auth.passwords.hash(normalized)
        user_id = new_id()
        now = auth.clock()
        try:
            async with auth.store.transaction() as conn:
                await conn.execute(
                    insert(t.users).values(
                        id=user_id, created_at=now, email=email, is_anonymous=False
                    )
                )
                await conn.execute(
                    insert(t.accounts).values(
                        id=new_id(),
                        created_at=now,
                        user_id=user_id,
                        provider=self.id,
                        provider_account_id=email,
                        secret=secret,
                    )
                )
        except IntegrityError as exc:
            raise AccountExists() from exc
        if client_buckets:
            await auth.rate_limiter.succeed(Bucket(f"account:{self.id}:{email}", 1), client_buckets)
        return user_id
