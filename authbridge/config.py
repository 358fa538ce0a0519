"""Configuration: one frozen :class:`AuthConfig`, every default declared exactly once.

:meth:`AuthConfig.from_env` is the only place in authbridge that reads environment variables.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, get_args

from .errors import ConfigError
from .keys import ALGORITHMS, Algorithm, KeySet
from .trusted import TrustedIssuer

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "AuthConfig",
    "EmailConfig",
    "EmailVerification",
    "OAuthProviderConfig",
    "PasswordConfig",
    "RateLimitConfig",
    "SessionSharing",
    "normalize_database_url",
    "parse_duration",
]

SessionSharing = Literal["shared", "per_tab"]
"""How browser tabs share sessions: one for the whole browser, or one per tab."""

EmailVerification = Literal["off", "optional", "required"]
"""Password sign-up: no verification, a code sent after sign-up, or sign-in only once verified."""

ENV_PREFIX = "AUTHBRIDGE_"

_ORIGIN_RE = re.compile(r"^https?://[^/\s]+$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """Parse ``"90"``, ``"90s"``, ``"15m"``, ``"1h"`` or ``"30d"`` into a :class:`timedelta`.

    Raises:
        ValueError: the text is not a non-negative number with an optional s/m/h/d suffix.
    """
    match = _DURATION_RE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration (use whole seconds or 10s, 15m, 1h, 30d)")
    number, unit = match.groups()
    if unit == "" and "." in number:
        raise ValueError(f"{text!r}: a duration without a unit must be whole seconds")
    try:
        return timedelta(seconds=float(number) * _UNIT_SECONDS[unit])
    except OverflowError as exc:
        raise ValueError(f"{text!r} is too long a duration") from exc


@dataclass(frozen=True, slots=True)
class PasswordConfig:
    """Password policy and hashing cost."""

    min_length: int = 8
    """Minimum length in characters, after NFKC normalisation."""
    max_bytes: int = 1024
    """Maximum UTF-8 size in bytes (bounds hashing cost)."""
    argon2_memory_kib: int = 19 * 1024
    """argon2id memory cost in KiB (OWASP minimum: 19 MiB)."""
    argon2_time_cost: int = 2
    """argon2id iterations (OWASP minimum: 2)."""
    argon2_parallelism: int = 1
    """argon2id lanes (OWASP minimum: 1)."""
    hash_workers: int = 0
    """Threads that hash passwords (at a lower OS priority than the event loop's thread);
    0 means one per CPU core."""
    hash_queue: int = 0
    """Hashing jobs queued or running at once per process; past it a sign-in or sign-up answers
    ``TooManyAttempts`` (429 with ``Retry-After``) instead of joining an unbounded backlog.
    0 means 16 per hashing thread."""

    def __post_init__(self) -> None:
        if self.min_length < 0 or self.max_bytes < max(1, self.min_length):
            raise ConfigError("password: need 0 <= min_length <= max_bytes")
        if self.argon2_time_cost < 1 or self.argon2_parallelism < 1:
            raise ConfigError("password: argon2 time cost and parallelism must be at least 1")
        if self.argon2_memory_kib < 8 * self.argon2_parallelism:
            raise ConfigError("password: argon2 memory must be at least 8 KiB per lane")
        if self.hash_workers < 0 or self.hash_queue < 0:
            raise ConfigError("password: hash_workers and hash_queue must not be negative")


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Token buckets of failed sign-in attempts, kept in the database."""

    account_attempts: int = 10
    """Failed attempts allowed per account per ``period`` (continuous refill)."""
    ip_attempts: int = 100
    """Failed attempts allowed per client IP per ``period`` (continuous refill)."""
    sign_up_attempts: int = 20
    """Sign-ups allowed per client IP per ``period``, successful or not (never refunded; an IPv6
    client counts by its /64)."""
    period: timedelta = timedelta(hours=1)
    """Time for an empty bucket to refill completely."""

    def __post_init__(self) -> None:
        if min(self.account_attempts, self.ip_attempts, self.sign_up_attempts) < 1:
            raise ConfigError("rate_limit: attempts must be at least 1")
        if self.period <= timedelta(0):
            raise ConfigError("rate_limit: period must be positive")


OAUTH_ID_RE = re.compile(r"^[a-z0-9-]{1,32}$")
"""A provider id: lower-case letters, digits and ``-``, at most 32 characters."""


@dataclass(frozen=True, slots=True)
class OAuthProviderConfig:
    """One OAuth 2.0 / OpenID Connect provider (``AUTHBRIDGE_OAUTH_<ID>_*``, DESIGN §17.3).

    A preset id (``github``, ``google``, ``microsoft``, ``gitlab``, ``discord``, ``apple``) brings
    its endpoints; any other id is a generic OpenID provider found by discovery from ``issuer``.
    """

    id: str
    """The provider id (``[a-z0-9-]{1,32}``): the ``provider`` of sign-in requests, the callback
    path ``{prefix}/callback/<id>``, the ``auth_accounts.provider`` value."""
    client_id: str
    """The client id registered at the provider."""
    client_secret: str | None = None
    """The client secret; ``None`` for a public client (PKCE alone). For ``apple``: the PEM of the
    private key that signs the client-secret JWT."""
    issuer: str | None = None
    """The issuer for OpenID discovery (required for a generic provider; overrides a preset's)."""
    scopes: tuple[str, ...] | None = None
    """Scopes to ask for; ``None``: the preset's (generic: ``openid email profile``)."""
    name: str | None = None
    """The button label; ``None``: the preset's name, else the id."""
    authorization_url: str | None = None
    """Overrides the authorization endpoint (self-hosted servers, tests)."""
    token_url: str | None = None
    """Overrides the token endpoint."""
    userinfo_url: str | None = None
    """Overrides the userinfo (``github``: user API) endpoint."""
    jwks_url: str | None = None
    """Overrides the key-set URL that ID tokens are checked against."""
    store_provider_tokens: bool = False
    """Keep the provider's access and refresh tokens (encrypted) for
    :meth:`Auth.provider_access_token`."""
    team_id: str | None = None
    """``apple`` only: the Apple developer team id (``iss`` of the client-secret JWT)."""
    key_id: str | None = None
    """``apple`` only: the id of the key in ``client_secret`` (``kid`` of the client secret)."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not OAUTH_ID_RE.match(self.id):
            raise ConfigError(f"OAuth provider id {self.id!r} must match [a-z0-9-]{{1,32}}")
        if not self.client_id:
            raise ConfigError(f"OAuth provider {self.id!r}: client_id is required")
        for name in ("issuer", "authorization_url", "token_url", "userinfo_url", "jwks_url"):
            value = getattr(self, name)
            if value is not None and not re.match(r"^https?://[^/\s]+", value):
                raise ConfigError(f"OAuth provider {self.id!r}: {name} must be an http(s) URL")
        if self.scopes is not None and not all(
            isinstance(s, str) and s and " " not in s for s in self.scopes
        ):
            raise ConfigError(f"OAuth provider {self.id!r}: scopes must be words")

    @property
    def env_name(self) -> str:
        """The ``<ID>`` of this provider's environment variables."""
        return self.id.upper().replace("-", "_")


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """One-time codes and magic links by email (and SMS), and how messages are sent."""

    smtp_url: str | None = field(default=None, repr=False)
    """``smtp://[user:pass@]host:port`` (``?starttls=true``) or ``smtps://`` (implicit TLS).
    ``None``: the console sender (development; refused with a server database unless
    ``console`` is set)."""
    sender: str = "authbridge <no-reply@localhost>"
    """The ``From`` of every message (``AUTHBRIDGE_EMAIL_FROM``)."""
    console: bool = False
    """Log messages instead of sending them even with a server database (explicit choice)."""
    verification: EmailVerification = "off"
    """Password sign-up: ``off``, ``optional`` (signs in and sends a code) or ``required``."""
    code_lifetime: timedelta = timedelta(minutes=15)
    """How long a code or link works."""
    code_attempts: int = 5
    """Wrong tries allowed per code; then it is void."""
    resend_interval: timedelta = timedelta(seconds=60)
    """At most one message per address (or phone number) per this interval."""
    sends_per_hour: int = 10
    """At most this many messages per address per hour (continuous refill)."""
    ip_sends_per_hour: int = 50
    """At most this many messages requested per client IP per hour."""
    ip_code_attempts: int = 50
    """Wrong codes (and magic links) allowed per client IP per ``RateLimitConfig.period``,
    whatever the address, on top of each code's ``code_attempts`` (continuous refill; a right
    code gives its token back)."""
    smtp_timeout: timedelta = timedelta(seconds=10)
    """Per connection / command; an attempt is bounded by three times this."""
    smtp_attempts: int = 3
    """Tries for a transient SMTP failure (exponential backoff from 0.5 s)."""

    def __post_init__(self) -> None:
        if self.verification not in get_args(EmailVerification):
            raise ConfigError("email: verification must be one of off, optional, required")
        if self.code_lifetime <= timedelta(0) or self.resend_interval < timedelta(0):
            raise ConfigError("email: code_lifetime must be positive, resend_interval >= 0")
        if (
            min(
                self.code_attempts,
                self.sends_per_hour,
                self.ip_sends_per_hour,
                self.ip_code_attempts,
            )
            < 1
        ):
            raise ConfigError("email: attempts and send limits must be at least 1")
        if self.smtp_timeout <= timedelta(0) or self.smtp_attempts < 1:
            raise ConfigError("email: smtp_timeout must be positive, smtp_attempts >= 1")
        if self.smtp_url is not None:
            from .mail import parse_smtp_url

            parse_smtp_url(self.smtp_url)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Everything that configures authbridge. Build it directly or with :meth:`from_env`."""

    database_url: str = "sqlite+aiosqlite:///./authbridge.db"
    """SQLAlchemy async URL. SQLite (the embedded default) or ``postgresql+asyncpg://...``."""
    site_url: str = "http://localhost:8000"
    """Public URL of the site; the JWT ``iss`` claim and the base of discovery documents."""
    session_sharing: SessionSharing = "shared"
    """``"shared"``: one session per browser. ``"per_tab"``: each tab has its own session."""
    jwt_duration: timedelta = timedelta(hours=1)
    """Lifetime of an access token (JWT)."""
    session_total_duration: timedelta = timedelta(days=30)
    """Absolute lifetime of a session; never extended."""
    session_inactive_duration: timedelta = timedelta(days=30)
    """A session ends when not refreshed for this long (sliding)."""
    refresh_reuse_window: timedelta = timedelta(seconds=10)
    """How long after its first use a refresh token may be presented again (races, retries)."""
    revocation_poll_interval: timedelta = timedelta(seconds=1)
    """How often each instance loads new revocations from the database."""
    revocation_notify: bool = True
    """PostgreSQL: push revocations to every instance with LISTEN/NOTIFY (applied at once);
    polling stays as the fallback. ``False`` relies on polling alone."""
    max_sessions_per_user: int = 100
    """Most sessions a user keeps; a new one past the cap ends the oldest (revoked)."""
    jwt_private_keys: tuple[str, ...] = ()
    """Private signing keys (PEM PKCS#8 or JWK JSON); the last one signs, all verify. Empty:
    a development key is generated and persisted (SQLite only)."""
    jwt_algorithm: Algorithm = ALGORITHMS[0]
    """Algorithm of the generated development key (configured keys imply their own)."""
    audience: str = "authbridge"
    """The JWT ``aud`` claim issued and required."""
    allowed_origins: tuple[str, ...] = ()
    """Origins, besides the request's own, allowed to make state-changing requests."""
    cookie_max_age: timedelta | None = None
    """Max-Age of the auth cookies; ``None`` uses the session's remaining lifetime."""
    browser_session_cookies: bool = False
    """Send cookies without Max-Age, so they end when the browser closes."""
    route_prefix: str = "/api/auth"
    """URL prefix of the auth endpoints."""
    sign_in_path: str = "/signin"
    """Page that protected HTML routes redirect to (with ``?next=``)."""
    reauth_path: str | None = None
    """Page that routes needing a recent sign-in redirect to (with ``?next=``); ``None``: the
    sign-in page with ``?reauth=1``."""
    max_tab_slots: int = 6
    """``per_tab`` only: most per-tab cookie slots kept; the least recently used is evicted."""
    password: PasswordConfig = field(default_factory=PasswordConfig)
    """Password policy and hashing cost."""
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    """Failed-attempt limits."""
    trusted_issuers: tuple[TrustedIssuer, ...] = ()
    """Other issuers whose bearer tokens authenticate requests (Convex Auth, Auth0, Clerk, ...)."""
    oauth: tuple[OAuthProviderConfig, ...] = ()
    """OAuth / OpenID Connect providers (``AUTHBRIDGE_OAUTH_<ID>_CLIENT_ID`` enables one)."""
    email: EmailConfig = field(default_factory=EmailConfig)
    """Email / SMS codes, magic links, password reset and verification (``AUTHBRIDGE_SMTP_URL``,
    ``AUTHBRIDGE_EMAIL_FROM``, ``AUTHBRIDGE_EMAIL_VERIFICATION``, ``AUTHBRIDGE_EMAIL_CONSOLE``)."""
    anonymous: bool = False
    """Enable the ``anonymous`` provider (``AUTHBRIDGE_ANONYMOUS``): try the app before signing
    up; a later sign-up or sign-in upgrades that same user."""
    anonymous_idle: timedelta = timedelta(days=30)
    """:meth:`Auth.cleanup` removes anonymous users with no session active for this long
    (``AUTHBRIDGE_ANONYMOUS_IDLE``)."""
    totp: bool = False
    """Offer TOTP as a second factor (provider ``totp``; needs ``authbridge[totp]``)."""
    passkeys: bool = False
    """Offer passkeys (provider ``passkey``; needs ``authbridge[passkeys]``); the relying party
    id is ``site_url``'s host."""

    def __post_init__(self) -> None:
        if isinstance(self.database_url, str):
            object.__setattr__(self, "database_url", normalize_database_url(self.database_url))
        for f in dataclasses.fields(self):
            problem = _field_problem(f.name, getattr(self, f.name))
            if problem is not None:
                raise ConfigError(f"{f.name} {problem}")

    @property
    def issuer(self) -> str:
        """The JWT ``iss`` claim and the discovery documents' issuer: ``site_url`` without a
        trailing ``/``."""
        return self.site_url.rstrip("/")

    @property
    def site_origin(self) -> str:
        """The origin of ``site_url`` (``scheme://host[:port]``), trusted like the request's own."""
        scheme, _, rest = self.site_url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0].lower()}"

    @property
    def is_https_site(self) -> bool:
        """``site_url`` is https: cookies are always ``__Host-`` and ``Secure``."""
        return self.site_url.startswith("https://")

    @property
    def is_per_tab(self) -> bool:
        """``session_sharing == "per_tab"``."""
        return self.session_sharing == "per_tab"

    @property
    def refresh_margin(self) -> timedelta:
        """Refresh an access token this long before it expires: min(60 s, max(10 s, 10 %))."""
        return min(timedelta(seconds=60), max(timedelta(seconds=10), self.jwt_duration / 10))

    @property
    def reauth_page(self) -> str:
        """Where a failed recent-authentication check sends a browser (before ``next=``)."""
        return self.reauth_path or f"{self.sign_in_path}?reauth=1"

    def replace(self, **changes: object) -> AuthConfig:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> AuthConfig:
        """Build a config from ``AUTHBRIDGE_*`` variables; unset variables keep their defaults.

        Args:
            environ: the variables to read (default ``os.environ``).
            overrides: fields set in code, applied after the environment.

        Raises:
            ConfigError: a variable has an invalid value; the message names it.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}

        def get(name: str) -> str | None:
            raw = env.get(ENV_PREFIX + name)
            return raw.strip() if raw is not None and raw.strip() != "" else None

        def bad(name: str, problem: str) -> ConfigError:
            return ConfigError(f"{ENV_PREFIX}{name}: {problem}")

        def put(name: str, value: object, field_name: str | None = None) -> None:
            field_name = field_name or name.lower()
            problem = _field_problem(field_name, value)
            if problem is not None:
                raise bad(name, f"{get(name)!r}: {field_name} {problem}")
            values[field_name] = value

        if (raw := get("DATABASE_URL")) is not None:
            put("DATABASE_URL", normalize_database_url(raw))
        for name in ("SITE_URL", "AUDIENCE", "ROUTE_PREFIX"):
            if (raw := get(name)) is not None:
                put(name, raw)
        if (raw := get("SESSION_SHARING")) is not None:
            put("SESSION_SHARING", raw)
        if (raw := get("JWT_ALGORITHM")) is not None:
            put("JWT_ALGORITHM", raw)
        for name in (
            "JWT_DURATION",
            "SESSION_TOTAL_DURATION",
            "SESSION_INACTIVE_DURATION",
            "REFRESH_REUSE_WINDOW",
            "REVOCATION_POLL_INTERVAL",
            "ANONYMOUS_IDLE",
        ):
            if (raw := get(name)) is not None:
                try:
                    duration = parse_duration(raw)
                except ValueError as exc:
                    raise bad(name, str(exc)) from exc
                put(name, duration)
        if (raw := get("MAX_SESSIONS_PER_USER")) is not None:
            if not raw.isdigit():
                raise bad("MAX_SESSIONS_PER_USER", f"{raw!r} is not a whole number")
            put("MAX_SESSIONS_PER_USER", int(raw))
        for name in ("TOTP", "PASSKEYS", "REVOCATION_NOTIFY", "ANONYMOUS"):
            if (raw := get(name)) is not None:
                put(name, _parse_flag(ENV_PREFIX + name, raw))
        if (raw := get("COOKIE_MAX_AGE")) is not None:
            if raw.lower() == "session":
                put("COOKIE_MAX_AGE", True, "browser_session_cookies")
            else:
                try:
                    max_age = parse_duration(raw)
                except ValueError as exc:
                    raise bad("COOKIE_MAX_AGE", f"{exc} (or 'session')") from exc
                put("COOKIE_MAX_AGE", max_age)
        if (raw := get("SIGN_UPS_PER_IP")) is not None:
            if not raw.isdigit() or int(raw) < 1:
                raise bad("SIGN_UPS_PER_IP", f"{raw!r} is not a whole number of at least 1")
            values["rate_limit"] = RateLimitConfig(sign_up_attempts=int(raw))
        if (raw := get("ALLOWED_ORIGINS")) is not None:
            origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
            for origin in origins:
                if not _ORIGIN_RE.match(origin):
                    raise bad(
                        "ALLOWED_ORIGINS", f"{origin!r} is not an origin like https://example.com"
                    )
            put("ALLOWED_ORIGINS", origins)
        if (raw := get("JWT_PRIVATE_KEYS")) is not None:
            keys = split_keys(raw)
            if not keys:
                raise bad("JWT_PRIVATE_KEYS", "no PEM private key or JWK found")
            # Load them now, so a broken key fails at startup with the variable's name.
            try:
                KeySet.from_texts(keys)
            except ConfigError as exc:
                raise bad("JWT_PRIVATE_KEYS", str(exc)) from exc
            put("JWT_PRIVATE_KEYS", keys)
        if (raw := get("TRUSTED_ISSUERS")) is not None:
            try:
                put("TRUSTED_ISSUERS", TrustedIssuer.parse_list(raw))
            except ConfigError as exc:
                raise bad("TRUSTED_ISSUERS", str(exc)) from exc
        email = _email_from_env(get, bad)
        if email is not None:
            values["email"] = email
        oauth = _oauth_from_env(env)
        if oauth:
            values["oauth"] = oauth
        report_unknown_env(env)
        values.update(overrides)
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ConfigError as exc:
            raise ConfigError(f"invalid configuration from {ENV_PREFIX}* variables: {exc}") from exc


KNOWN_ENV_NAMES = frozenset(
    {
        # read above
        "DATABASE_URL", "SITE_URL", "AUDIENCE", "ROUTE_PREFIX", "SESSION_SHARING",
        "JWT_ALGORITHM", "JWT_DURATION", "SESSION_TOTAL_DURATION", "SESSION_INACTIVE_DURATION",
        "REFRESH_REUSE_WINDOW", "REVOCATION_POLL_INTERVAL", "COOKIE_MAX_AGE", "ALLOWED_ORIGINS",
        "JWT_PRIVATE_KEYS", "MAX_SESSIONS_PER_USER", "REVOCATION_NOTIFY", "SIGN_UPS_PER_IP",
        "TRUSTED_ISSUERS",
        # DESIGN §17 (read by the modules that land them)
        "SMTP_URL", "EMAIL_FROM", "EMAIL_VERIFICATION", "EMAIL_CONSOLE", "EMAIL_CODE_LIFETIME",
        "ANONYMOUS", "ANONYMOUS_IDLE",
        # DESIGN §17.7 (second factors, passkeys)
        "TOTP", "PASSKEYS",
    }
)  # fmt: skip
"""``AUTHBRIDGE_*`` names (without the prefix) authbridge reads; ``OAUTH_<ID>_*`` come on top."""
_KNOWN_ENV_PREFIXES = ("OAUTH_", "TEST_")

_env_logger = logging.getLogger("authbridge.config")


def unknown_env_names(env: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """``AUTHBRIDGE_*`` variables authbridge does not read (typos), each with the closest valid
    name or ``None``."""
    out: list[tuple[str, str | None]] = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        short = name[len(ENV_PREFIX) :]
        if short in KNOWN_ENV_NAMES or short.startswith(_KNOWN_ENV_PREFIXES):
            continue
        close = difflib.get_close_matches(short, KNOWN_ENV_NAMES, n=1, cutoff=0.6)
        out.append((name, ENV_PREFIX + close[0] if close else None))
    return out


def report_unknown_env(env: Mapping[str, str]) -> None:
    """Log a warning for each unknown ``AUTHBRIDGE_*`` variable, naming the closest valid one."""
    for name, close in unknown_env_names(env):
        hint = f"; did you mean {close}?" if close else ""
        _env_logger.warning("%s is not an authbridge setting and is ignored%s", name, hint)


_OAUTH_FIELDS = {
    "CLIENT_SECRET": "client_secret",
    "ISSUER": "issuer",
    "NAME": "name",
    "AUTHORIZATION_URL": "authorization_url",
    "TOKEN_URL": "token_url",
    "USERINFO_URL": "userinfo_url",
    "JWKS_URL": "jwks_url",
    "TEAM_ID": "team_id",
    "KEY_ID": "key_id",
}


def _oauth_from_env(env: Mapping[str, str]) -> tuple[OAuthProviderConfig, ...]:
    """Providers enabled by ``AUTHBRIDGE_OAUTH_<ID>_CLIENT_ID`` (sorted by id).

    Raises:
        ConfigError: an invalid id or value; the message names the variable.
    """
    head, tail = ENV_PREFIX + "OAUTH_", "_CLIENT_ID"
    found: list[OAuthProviderConfig] = []
    for key in sorted(env):
        if not (key.startswith(head) and key.endswith(tail)) or len(key) <= len(head + tail):
            continue
        name = key[len(head) : -len(tail)]
        provider_id = name.lower().replace("_", "-")
        client_id = env[key].strip()
        if not OAUTH_ID_RE.match(provider_id) or name != provider_id.upper().replace("-", "_"):
            raise ConfigError(f"{key}: {provider_id!r} is not a provider id ([a-z0-9-]{{1,32}})")
        if not client_id:
            continue

        def get(suffix: str, name: str = name) -> str | None:
            raw = env.get(f"{head}{name}_{suffix}")
            return raw.strip() if raw is not None and raw.strip() != "" else None

        fields: dict[str, object] = {"id": provider_id, "client_id": client_id}
        for suffix, field_name in _OAUTH_FIELDS.items():
            value = get(suffix)
            if value is not None:
                fields[field_name] = (
                    value.replace("\\n", "\n") if suffix == "CLIENT_SECRET" else value
                )
        if (scopes := get("SCOPES")) is not None:
            fields["scopes"] = tuple(scopes.split())
        if (flag := get("STORE_PROVIDER_TOKENS")) is not None:
            fields["store_provider_tokens"] = _parse_flag(
                f"{head}{name}_STORE_PROVIDER_TOKENS", flag
            )
        try:
            found.append(OAuthProviderConfig(**fields))  # type: ignore[arg-type]
        except ConfigError as exc:
            raise ConfigError(f"{head}{name}_*: {exc}") from exc
    return tuple(found)


_FLAGS = {"1": True, "true": True, "yes": True, "on": True}
_FLAGS.update({"0": False, "false": False, "no": False, "off": False})
"""The spellings every true/false variable accepts (any case)."""


def _parse_flag(name: str, value: str) -> bool:
    """The true/false variable ``name`` (its full name, for the message) set to ``value``.

    Raises:
        ConfigError: ``value`` is none of :data:`_FLAGS`; the message names the variable.
    """
    flag = _FLAGS.get(value.strip().lower())
    if flag is None:
        raise ConfigError(f"{name}: {value!r} is not true or false (1/0, yes/no, on/off)")
    return flag


def _email_from_env(
    get: Callable[[str], str | None], bad: Callable[[str, str], ConfigError]
) -> EmailConfig | None:
    """The email group from ``AUTHBRIDGE_SMTP_URL``, ``_EMAIL_FROM``, ``_EMAIL_VERIFICATION``,
    ``_EMAIL_CONSOLE`` and ``_EMAIL_CODE_LIFETIME`` (``None``: none of them is set)."""
    changes: dict[str, object] = {}
    if (raw := get("SMTP_URL")) is not None:
        from .mail import parse_smtp_url

        try:
            parse_smtp_url(raw)
        except ConfigError as exc:
            raise bad("SMTP_URL", str(exc)) from exc
        changes["smtp_url"] = raw
    if (raw := get("EMAIL_FROM")) is not None:
        changes["sender"] = raw
    if (raw := get("EMAIL_VERIFICATION")) is not None:
        if raw not in get_args(EmailVerification):
            raise bad("EMAIL_VERIFICATION", f"{raw!r}: must be one of off, optional, required")
        changes["verification"] = raw
    if (raw := get("EMAIL_CONSOLE")) is not None:
        changes["console"] = _parse_flag(ENV_PREFIX + "EMAIL_CONSOLE", raw)
    if (raw := get("EMAIL_CODE_LIFETIME")) is not None:
        try:
            changes["code_lifetime"] = parse_duration(raw)
        except ValueError as exc:
            raise bad("EMAIL_CODE_LIFETIME", str(exc)) from exc
    if not changes:
        return None
    try:
        return EmailConfig(**changes)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise bad("EMAIL_*", str(exc)) from exc


def normalize_database_url(url: str) -> str:
    """Pick authbridge's async driver for plain URLs: ``postgres://`` and ``postgresql://`` become
    ``postgresql+asyncpg://``, ``sqlite://`` becomes ``sqlite+aiosqlite://``."""
    for plain, driver in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def _positive(value: object) -> str | None:
    ok = isinstance(value, timedelta) and value > timedelta(0)
    return None if ok else "must be a positive duration"


def _non_negative(value: object) -> str | None:
    ok = isinstance(value, timedelta) and value >= timedelta(0)
    return None if ok else "must not be negative"


def _one_of(options: tuple[str, ...]) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        return None if value in options else f"must be one of {', '.join(options)}"

    return check


def _path_prefix(value: object) -> str | None:
    ok = isinstance(value, str) and value.startswith("/") and not value.endswith("/")
    return None if ok else "must start with '/' and not end with '/'"


_FIELD_CHECKS: dict[str, Callable[[object], str | None]] = {
    "database_url": lambda v: (
        None
        if isinstance(v, str) and re.match(r"^(sqlite|postgresql)(\+\w+)?://", v)
        else "must be a sqlite+aiosqlite:// or postgresql+asyncpg:// URL"
    ),
    "site_url": lambda v: (
        None
        if isinstance(v, str) and re.match(r"^https?://[^/\s]+", v)
        else "must be an http(s) URL"
    ),
    "session_sharing": _one_of(get_args(SessionSharing)),
    "jwt_algorithm": _one_of(ALGORITHMS),
    "jwt_duration": _positive,
    "session_total_duration": _positive,
    "session_inactive_duration": _positive,
    "revocation_poll_interval": _positive,
    "refresh_reuse_window": _non_negative,
    "anonymous_idle": _positive,
    "anonymous": lambda v: None if isinstance(v, bool) else "must be true or false",
    "cookie_max_age": lambda v: None if v is None else _positive(v),
    "audience": lambda v: None if isinstance(v, str) and v else "must be a non-empty string",
    "route_prefix": _path_prefix,
    "sign_in_path": lambda v: (
        None if isinstance(v, str) and v.startswith("/") else "must start with '/'"
    ),
    "reauth_path": lambda v: (
        None if v is None or (isinstance(v, str) and v.startswith("/")) else "must start with '/'"
    ),
    "allowed_origins": lambda v: (
        None
        if isinstance(v, tuple) and all(isinstance(o, str) and _ORIGIN_RE.match(o) for o in v)
        else "must be a tuple of origins like 'https://example.com' (no path, no trailing /)"
    ),
    "trusted_issuers": lambda v: (
        None
        if isinstance(v, tuple)
        and all(isinstance(i, TrustedIssuer) for i in v)
        and len({i.issuer for i in v}) == len(v)
        else "must be a tuple of TrustedIssuer, one per issuer"
    ),
    "max_tab_slots": lambda v: None if isinstance(v, int) and v >= 1 else "must be at least 1",
    "max_sessions_per_user": lambda v: (
        None if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else "must be at least 1"
    ),
    "revocation_notify": lambda v: None if isinstance(v, bool) else "must be true or false",
    "oauth": lambda v: (
        None
        if isinstance(v, tuple)
        and all(isinstance(p, OAuthProviderConfig) for p in v)
        and len({p.id for p in v}) == len(v)
        else "must be a tuple of OAuthProviderConfig with distinct ids"
    ),
    "totp": lambda v: None if isinstance(v, bool) else "must be true or false",
    "passkeys": lambda v: None if isinstance(v, bool) else "must be true or false",
}


def _field_problem(name: str, value: object) -> str | None:
    """What is wrong with ``value`` for field ``name`` (``None``: nothing). One set of rules for
    :class:`AuthConfig` and :meth:`AuthConfig.from_env`."""
    check = _FIELD_CHECKS.get(name)
    return None if check is None else check(value)


_PEM_RE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)


def split_keys(text: str) -> tuple[str, ...]:
    """Split concatenated PEM private keys (or a JSON JWK / JWK set) into single keys.

    Literal ``\\n`` sequences are accepted in place of newlines, so a key fits in one env line.
    """
    text = text.replace("\\n", "\n").strip()
    if text.startswith("{") or text.startswith("["):
        return (text,)
    return tuple(m.group(0) for m in _PEM_RE.finditer(text))
