"""Configuration: one frozen :class:`AuthConfig`, every default declared exactly once.

:meth:`AuthConfig.from_env` is the only place in authbridge that reads environment variables.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, get_args

from .errors import ConfigError

__all__ = [
    "Algorithm",
    "AuthConfig",
    "PasswordConfig",
    "RateLimitConfig",
    "SessionSharing",
    "parse_duration",
]

SessionSharing = Literal["shared", "per_tab"]
"""How browser tabs share sessions: one for the whole browser, or one per tab."""

Algorithm = Literal["ES256", "RS256", "EdDSA"]
"""JWT signing algorithms authbridge issues and accepts."""

ENV_PREFIX = "AUTHBRIDGE_"

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
    return timedelta(seconds=float(number) * _UNIT_SECONDS[unit])


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
    """Threads that hash passwords; 0 means one per CPU core."""


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Token buckets of failed sign-in attempts, kept in the database."""

    account_attempts: int = 10
    """Failed attempts allowed per account per ``period`` (continuous refill)."""
    ip_attempts: int = 100
    """Failed attempts allowed per client IP per ``period`` (continuous refill)."""
    period: timedelta = timedelta(hours=1)
    """Time for an empty bucket to refill completely."""


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
    jwt_private_keys: tuple[str, ...] = ()
    """Private signing keys (PEM PKCS#8 or JWK JSON); the last one signs, all verify. Empty:
    a development key is generated and persisted (SQLite only)."""
    jwt_algorithm: Algorithm = "ES256"
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
    max_tab_slots: int = 6
    """``per_tab`` only: most per-tab cookie slots kept; the least recently used is evicted."""
    password: PasswordConfig = field(default_factory=PasswordConfig)
    """Password policy and hashing cost."""
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    """Failed-attempt limits."""

    def __post_init__(self) -> None:
        if self.session_sharing not in get_args(SessionSharing):
            raise ConfigError(
                f"session_sharing must be 'shared' or 'per_tab', not {self.session_sharing!r}"
            )
        if self.jwt_algorithm not in get_args(Algorithm):
            raise ConfigError(f"jwt_algorithm must be one of {get_args(Algorithm)}")
        for name in (
            "jwt_duration",
            "session_total_duration",
            "session_inactive_duration",
            "revocation_poll_interval",
        ):
            if getattr(self, name) <= timedelta(0):
                raise ConfigError(f"{name} must be positive")
        if self.refresh_reuse_window < timedelta(0):
            raise ConfigError("refresh_reuse_window must not be negative")
        if not self.route_prefix.startswith("/") or self.route_prefix.endswith("/"):
            raise ConfigError("route_prefix must start with '/' and not end with '/'")
        if not self.sign_in_path.startswith("/"):
            raise ConfigError("sign_in_path must start with '/'")
        if self.max_tab_slots < 1:
            raise ConfigError("max_tab_slots must be at least 1")

    @property
    def refresh_margin(self) -> timedelta:
        """Refresh an access token this long before it expires: min(60 s, max(10 s, 10 %))."""
        return min(timedelta(seconds=60), max(timedelta(seconds=10), self.jwt_duration / 10))

    @property
    def is_embedded_database(self) -> bool:
        """True for SQLite, the embedded default."""
        return self.database_url.startswith("sqlite")

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
            return raw if raw is not None and raw.strip() != "" else None

        def bad(name: str, problem: str) -> ConfigError:
            return ConfigError(f"{ENV_PREFIX}{name}: {problem}")

        for name in ("DATABASE_URL", "SITE_URL", "AUDIENCE", "ROUTE_PREFIX"):
            raw = get(name)
            if raw is not None:
                values[name.lower()] = raw.strip()
        if (raw := get("SITE_URL")) is not None and not re.match(r"^https?://[^/\s]+", raw):
            raise bad("SITE_URL", f"{raw!r} is not an http(s) URL")
        if (raw := get("SESSION_SHARING")) is not None:
            if raw.strip() not in get_args(SessionSharing):
                raise bad("SESSION_SHARING", f"{raw!r} is not 'shared' or 'per_tab'")
            values["session_sharing"] = raw.strip()
        if (raw := get("JWT_ALGORITHM")) is not None:
            if raw.strip() not in get_args(Algorithm):
                raise bad(
                    "JWT_ALGORITHM", f"{raw!r} is not one of {', '.join(get_args(Algorithm))}"
                )
            values["jwt_algorithm"] = raw.strip()
        for name in (
            "JWT_DURATION",
            "SESSION_TOTAL_DURATION",
            "SESSION_INACTIVE_DURATION",
            "REFRESH_REUSE_WINDOW",
            "REVOCATION_POLL_INTERVAL",
        ):
            if (raw := get(name)) is not None:
                try:
                    values[name.lower()] = parse_duration(raw)
                except ValueError as exc:
                    raise bad(name, str(exc)) from exc
        if (raw := get("COOKIE_MAX_AGE")) is not None:
            if raw.strip().lower() == "session":
                values["browser_session_cookies"] = True
            else:
                try:
                    values["cookie_max_age"] = parse_duration(raw)
                except ValueError as exc:
                    raise bad("COOKIE_MAX_AGE", f"{exc} (or 'session')") from exc
        if (raw := get("ALLOWED_ORIGINS")) is not None:
            origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
            for origin in origins:
                if not re.match(r"^https?://[^/\s]+$", origin):
                    raise bad(
                        "ALLOWED_ORIGINS", f"{origin!r} is not an origin like https://example.com"
                    )
            values["allowed_origins"] = origins
        if (raw := get("JWT_PRIVATE_KEYS")) is not None:
            values["jwt_private_keys"] = split_keys(raw)
            if not values["jwt_private_keys"]:
                raise bad("JWT_PRIVATE_KEYS", "no PEM private key or JWK found")
        values.update(overrides)
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ConfigError as exc:
            raise ConfigError(f"invalid configuration from {ENV_PREFIX}* variables: {exc}") from exc


_PEM_RE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)


def split_keys(text: str) -> tuple[str, ...]:
    """Split concatenated PEM private keys (or a JSON JWK / JWK set) into single keys.

    Literal ``\\n`` sequences are accepted in place of newlines, so a key fits in one env line.
    """
    text = text.replace("\\n", "\n").strip()
    if text.startswith("{") or text.startswith("["):
        return (text,)
    return tuple(m.group(0) for m in _PEM_RE.finditer(text))
