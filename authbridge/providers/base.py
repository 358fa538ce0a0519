"""The provider interface (re-exported by :mod:`authbridge.providers`; see its docstring)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ..errors import InvalidEmail, InvalidParams

if TYPE_CHECKING:
    from ..config import AuthConfig
    from ..events import Events
    from ..passwords import PasswordHasher
    from ..ratelimit import Bucket
    from ..store.accounts import AccountRepository
    from ..store.factors import FactorRepository
    from ..store.oauth import OAuthRepository
    from ..store.passkeys import PasskeyRepository
    from ..store.users import UserRepository

__all__ = [
    "DEFAULT_AMR",
    "Attempt",
    "CookieToSet",
    "Limiter",
    "Outcome",
    "Page",
    "Provider",
    "ProviderContext",
    "ProviderRoute",
    "ProviderSessions",
    "Redirect",
    "RouteHandler",
    "RouteRequest",
    "SameSite",
    "SecondFactor",
    "SignInRequest",
    "SignedIn",
    "Started",
    "default_amr",
    "email_bucket_name",
    "normalize_email",
    "str_param",
]

# -- outcomes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The user is authenticated: start a session for ``user_id``."""

    user_id: str
    """The user to sign in."""
    redirect_to: str | None = None
    """Where a browser goes next (a same-site path, checked by the endpoints); ``None`` lets the
    endpoints decide (the form's ``redirectTo``, else ``/``)."""
    tab: str | None = None
    """``per_tab``: the tab slot the session lands in (an OAuth callback names the tab that
    started the flow); ``None``: the request's own slot."""
    new_user: bool = False
    """The provider created ``user_id`` in this step (a sign-up). When the browser was signed in
    anonymously (:attr:`SignInRequest.user_id`), the engine folds the new user into the
    anonymous one, so the person keeps their id and data; an existing user instead receives the
    anonymous user's data through the app's ``on_anonymous_merge`` hook."""
    linked: str | None = None
    """The provider attached its identity ``linked`` (the account identifier) to ``user_id`` in
    this step (account linking): the engine records an ``account_linked`` event."""
    amr: tuple[str, ...] = ()
    """How the user authenticated, as RFC 8176 ``amr`` values (``"pwd"``, ``"otp"``, ``"hwk"``,
    ...); recorded on the session with the time. Empty: the engine names the method after the
    provider (:data:`~authbridge.providers.DEFAULT_AMR`)."""


@dataclass(frozen=True, slots=True)
class Started:
    """A step started: a code or link was sent, or a second factor is needed."""

    factor: str | None = None
    """The second factor the client must supply next (e.g. ``"totp"``), or ``None``."""


@dataclass(frozen=True, slots=True)
class Redirect:
    """Send the browser to ``url`` (an OAuth authorization endpoint)."""

    url: str
    """An absolute URL; the endpoints pass it to the client as is."""


Outcome = SignedIn | Started | Redirect
"""What a provider's :meth:`Provider.sign_in` returns."""


@dataclass(frozen=True, slots=True)
class Page:
    """A small response a provider route returns itself (e.g. the email link's confirm page)."""

    body: str
    """The HTML (already escaped by the provider)."""
    status: int = 200
    """HTTP status."""
    content_type: str = "text/html; charset=utf-8"
    """The ``Content-Type``."""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra response headers (e.g. a ``Content-Security-Policy`` with a script nonce)."""


DEFAULT_AMR: Mapping[str, tuple[str, ...]] = {
    "password": ("pwd",),
    "email": ("otp",),
    "phone": ("sms",),
    "passkey": ("hwk", "user"),
    "anonymous": ("anon",),
}
"""The ``amr`` of a :class:`SignedIn` that names none, by provider id; other providers (OAuth)
get ``("oauth",)``."""


def default_amr(provider_id: str) -> tuple[str, ...]:
    """The ``amr`` recorded for ``provider_id`` when its outcome names none."""
    return DEFAULT_AMR.get(provider_id, ("oauth",))


# -- the request ---------------------------------------------------------------------------------

SameSite = Literal["Lax", "Strict", "None"]


@dataclass(frozen=True, slots=True)
class CookieToSet:
    """A cookie a provider asked the response to set (``max_age=0`` deletes it)."""

    name: str
    value: str
    max_age: int
    same_site: SameSite = "Lax"


@dataclass(frozen=True, slots=True)
class SignInRequest:
    """Facts about the request making a sign-in attempt, and its response cookies.

    Built by the endpoints (or by :meth:`Auth.sign_in` for calls outside a request).
    """

    ip: str | None = None
    """Client IP (rate limiting, the sessions list). Behind a proxy, what the ASGI server
    reports (uvicorn ``--forwarded-allow-ips``)."""
    user_agent: str | None = None
    """The browser's User-Agent (the sessions list)."""
    user_id: str | None = None
    """The user already signed in on this browser slot (anonymous upgrade, account linking)."""
    session_id: str | None = None
    """That user's current session."""
    cookies: Mapping[str, str] = field(default_factory=dict)
    """The request's cookies by the names given to :meth:`set_cookie` (on https only
    ``__Host-`` cookies are listed, without the prefix; OAuth flow cookies)."""
    device: str | None = None
    """The account this browser signed in to before (``"<provider>:<identifier>"``, from a valid
    "known device" cookie); the limiter gives a known browser its own account bucket."""
    device_id: str | None = None
    """The known-device cookie's random id (set with ``device``)."""
    tab: str | None = None
    """``per_tab``: the tab making the request (an OAuth flow brings the session back to it)."""
    auth_time: datetime | None = None
    """When the signed-in user (``user_id``) last authenticated in this session (step-up
    checks, :meth:`recent`)."""
    set_cookies: list[CookieToSet] = field(default_factory=list)
    """Cookies to set on the response (appended by :meth:`set_cookie`)."""
    signed_in_accounts: list[str] = field(default_factory=list)
    """Accounts this request proved it can sign in to (appended by :meth:`remember_device`)."""

    def recent(self, max_age: timedelta, now: datetime) -> bool:
        """True when the signed-in user authenticated within ``max_age`` before ``now``."""
        if self.user_id is None or self.auth_time is None:
            return False
        return now - max_age <= self.auth_time <= now + timedelta(seconds=60)

    def remember_device(self, provider: str, identifier: str) -> None:
        """Record that this browser signed in to the account ``identifier`` of ``provider``
        (after a *successful* check): the response sets the known-device cookie, and later
        attempts from this browser get their own account bucket (see :meth:`Limiter.account`).
        """
        self.signed_in_accounts.append(f"{provider}:{identifier}")

    def set_cookie(
        self, name: str, value: str, *, max_age: int, same_site: SameSite = "Lax"
    ) -> None:
        """Set an HttpOnly cookie on the response (``Secure`` and ``__Host-`` prefixed on
        https).

        Raises:
            ValueError: the name or value holds characters a cookie cannot carry.
        """
        if not _COOKIE_NAME_RE.match(name) or not _COOKIE_VALUE_RE.match(value):
            raise ValueError("cookie name or value has characters a cookie cannot carry")
        self.set_cookies.append(CookieToSet(name, value, max_age, same_site))

    def clear_cookie(self, name: str, *, same_site: SameSite = "Lax") -> None:
        """Delete a cookie on the response."""
        self.set_cookie(name, "", max_age=0, same_site=same_site)


_COOKIE_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,128}$")
_COOKIE_VALUE_RE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{0,4000}$")


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """A request to a provider-owned route."""

    method: str
    """``GET``, ``HEAD`` or ``POST``."""
    query: Mapping[str, str]
    """The query string's parameters (last value wins)."""
    body: Mapping[str, Any]
    """A POST's JSON object or form fields (empty for GET)."""
    sign_in: SignInRequest
    """Client facts and response cookies, as for :meth:`Provider.sign_in`."""


RouteHandler = Callable[["ProviderContext", RouteRequest], Awaitable["Outcome | Page"]]
"""Serves one provider route: returns an outcome (a :class:`SignedIn` starts a session and
redirects the browser) or a :class:`Page`; raises a :class:`~authbridge.errors.AuthError`, which
a browser sees as a redirect to the sign-in page with ``?error=<Code>``."""


@dataclass(frozen=True, slots=True)
class ProviderRoute:
    """A route a provider owns, under the auth prefix (e.g. ``callback/github``)."""

    path: str
    """Relative to the prefix, without a leading slash."""
    methods: tuple[str, ...]
    """Allowed methods (``HEAD`` is allowed wherever ``GET`` is)."""
    handler: RouteHandler
    """Serves the route."""
    check_origin: bool = True
    """Refuse cross-origin POSTs (turn off only for cross-site form posts that carry their own
    proof, such as OAuth ``form_post`` callbacks checked by ``state``)."""


# -- the context ---------------------------------------------------------------------------------


class Attempt(Protocol):
    """One rate-limited attempt (inside :meth:`Limiter.attempt`)."""

    def succeed(self) -> None:
        """Mark the attempt successful: reset and refund buckets when the block exits."""
        ...


class Limiter(Protocol):
    """Database-backed token buckets: the one place providers go through for rate limits."""

    def account(self, provider: str, identifier: str, request: SignInRequest) -> Bucket:
        """The bucket of failed attempts against one account (a browser that signed in to it
        before gets its own)."""
        ...

    def clients(self, request: SignInRequest) -> list[Bucket]:
        """The client's buckets (per IP; IPv6 keyed by /64)."""
        ...

    def sign_ups(self, request: SignInRequest) -> list[Bucket]:
        """The client's sign-up buckets (per IP, never refunded)."""
        ...

    def attempt(
        self,
        *,
        reset: Sequence[Bucket] = (),
        refund: Sequence[Bucket] = (),
        keep: Sequence[Bucket] = (),
        forget: Sequence[Bucket] = (),
    ) -> AbstractAsyncContextManager[Attempt]:
        """Take one token from every bucket on entry (all or none); when the block exits after
        :meth:`Attempt.succeed`, empty ``reset`` of failures and give ``refund`` its token back
        (``keep`` keeps what it spent; ``forget`` is not spent, only emptied of failures on
        success).

        Raises:
            TooManyAttempts: a bucket is empty (on entry).
            StoreUnavailable: the database failed.
        """
        ...


class ProviderSessions(Protocol):
    """The session operations a provider may need."""

    async def end_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        """End every session of ``user_id`` but ``keep``: whoever else holds one (a stolen one,
        say) is signed out after a password reset, when a code proves an address or number
        that an unverified user held, or when the owner disables TOTP or removes a passkey
        (keeping the session that did it). Returns how many ended.

        Raises:
            StoreUnavailable: the database failed.
        """
        ...


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What a provider may use. Built by :class:`~authbridge.Auth` (its ``provider_context``)
    once it is open."""

    config: AuthConfig
    """The settings."""
    clock: Callable[[], datetime]
    """The current time (timezone-aware UTC)."""
    users: UserRepository
    """The ``users`` table."""
    accounts: AccountRepository
    """The ``accounts`` table (one row per provider identity; passwords hash on the account)."""
    hasher: PasswordHasher
    """argon2id hashing off the event loop."""
    limiter: Limiter
    """Rate limits."""
    sessions: ProviderSessions
    """Session operations."""
    mailer: Any = None
    """An email sender (:mod:`authbridge.mail`), or ``None`` when email is not configured."""
    oauth: OAuthRepository | None = None
    """OAuth flows in progress, identities and provider tokens (encrypted at rest)."""
    codes: Any = None
    """One-time codes and magic links: a :class:`~authbridge.otp.CodeDelivery` (its
    ``repository`` stores the hashes; it throttles, renders and sends messages)."""
    factors: FactorRepository | None = None
    """Second factors (TOTP secrets, recovery codes)."""
    passkeys: PasskeyRepository | None = None
    """Passkeys (WebAuthn credentials) and their ceremonies' challenges."""
    derive_secrets: Callable[[str], list[bytes]] | None = None
    """Symmetric keys for a purpose, derived from the signing keys (newest first): sign flow
    cookies, seal secrets at rest."""
    events: Events | None = None
    """The auth event stream (:mod:`authbridge.events`): a provider records what changes an
    account's security when the change is committed (e.g. ``factor_added`` when a passkey is
    registered), never a secret. ``None`` only in a context built by hand, where nothing is
    recorded."""


# -- the provider --------------------------------------------------------------------------------


class Provider(Protocol):
    """A sign-in method."""

    id: str
    """The ``provider`` value of the sign-in wire format (``[a-z0-9-]{1,32}``)."""

    async def sign_in(
        self, ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
    ) -> Outcome:
        """Handle ``POST {prefix}/signin`` for this provider.

        Raises:
            SignInError: a stable code (``InvalidParams``, ``InvalidCredentials``,
                ``TooManyAttempts``, ...).
            StoreUnavailable: the database failed.
        """
        ...

    def routes(self) -> Sequence[ProviderRoute]:
        """Extra routes this provider serves under the auth prefix (usually none)."""
        ...


@runtime_checkable
class SecondFactor(Protocol):
    """A provider that can hold back a sign-in until a second factor is given (TOTP)."""

    async def second_factor(
        self, ctx: ProviderContext, outcome: SignedIn, request: SignInRequest
    ) -> Started | None:
        """``None`` to let ``outcome`` start a session, or the step that asks for the factor
        (the provider remembers the pending sign-in, e.g. in a short-lived cookie).

        Raises:
            StoreUnavailable: the database failed.
        """
        ...


# -- helpers providers share ---------------------------------------------------------------------

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


def email_bucket_name(email_raw: str) -> str:
    """The normalised address, or for input that is no address a name safe to store whatever
    bytes it holds (such input is still rate-limited)."""
    try:
        return normalize_email(email_raw)
    except InvalidEmail:
        raw = email_raw.strip().lower().encode("utf-8", "surrogatepass")
        return "invalid:" + hashlib.sha256(raw).hexdigest()


def str_param(params: Mapping[str, Any], name: str) -> str:
    """A required non-empty string param.

    Raises:
        InvalidParams: missing, empty or not a string.
    """
    value = params.get(name)
    if value is None or value == "":
        raise InvalidParams(f"params.{name} is required")
    if not isinstance(value, str):
        raise InvalidParams(f"params.{name} must be a string")
    return value


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
