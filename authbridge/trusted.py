"""Bearer tokens from other issuers (``AUTHBRIDGE_TRUSTED_ISSUERS``): Convex Auth, Auth0, Clerk...

A bearer token whose ``iss`` names a trusted issuer is verified with that issuer's keys (one
:class:`~authbridge.jwks.JwksCache` per issuer: discovery or ``jwks_url``, max-age with a floor,
one fetch in flight, unknown-``kid`` refetch with a cooldown, stale keys while the issuer is down,
the algorithm allow-list checked first). ``iss``, ``aud``, ``exp`` and ``iat`` are required, with a
small clock leeway. Our own refresh and session machinery is not involved: these tokens are never
refreshed, stored or revoked by us.

The subject: with ``"subject": "convex"``, ``sub`` is Convex Auth's ``userId|sessionId`` and is
split into both; otherwise ``sub`` is the user id and ``sid`` (when present) the session id.

Warm verification costs what our own does: verified tokens are kept in a bounded cache keyed by
the raw token (expiry re-checked on every hit), so only the first request with a token pays for
the signature check.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import httpx

from .errors import ConfigError, TokenError
from .jwks import DEFAULT_LEEWAY, JwksCache, check_fetch_url

if TYPE_CHECKING:
    from .state import AuthState

__all__ = ["RemoteToken", "TrustedIssuer", "TrustedIssuers"]

ALGORITHMS = ("RS256", "ES256", "EdDSA")
"""Algorithms accepted from trusted issuers (public-key signatures only)."""

CACHE_SIZE = 10_000
"""Verified remote tokens kept (the oldest are dropped first)."""


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """Another issuer whose bearer tokens authenticate requests (``AUTHBRIDGE_TRUSTED_ISSUERS``
    holds a JSON list of these: ``{"issuer", "audience", "jwks_url"?, "subject"?}``)."""

    issuer: str
    """The exact ``iss`` of its tokens (a Convex deployment's site URL, ``https://x.auth0.com/``)."""
    audience: str
    """The ``aud`` its tokens must carry for us (Convex Auth: ``"convex"``)."""
    jwks_url: str | None = None
    """Where its keys are; without it, OpenID discovery from ``issuer`` finds them."""
    subject: Literal["convex"] | None = None
    """``"convex"``: ``sub`` is Convex Auth's ``userId|sessionId`` and is split into both ids;
    otherwise ``sub`` is the user id and ``sid`` (when present) the session id."""

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise ConfigError("trusted issuer: 'issuer' must be a non-empty string")
        if not isinstance(self.audience, str) or not self.audience:
            raise ConfigError(
                f"trusted issuer {self.issuer}: 'audience' must be a non-empty string"
            )
        if self.subject not in (None, "convex"):
            raise ConfigError(
                f"trusted issuer {self.issuer}: 'subject' must be \"convex\" or absent"
            )
        if self.jwks_url is not None:
            check_fetch_url(self.jwks_url, f"trusted issuer {self.issuer}: jwks_url")
        else:
            check_fetch_url(self.issuer, f"trusted issuer {self.issuer} (no jwks_url: discovery)")

    @classmethod
    def parse_list(cls, text: str) -> tuple[TrustedIssuer, ...]:
        """Parse ``AUTHBRIDGE_TRUSTED_ISSUERS``: a JSON list of issuer objects.

        Raises:
            ConfigError: not JSON, not a list of objects, unknown or invalid fields.
        """
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"not valid JSON ({exc})") from exc
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ConfigError('must be a JSON list of {"issuer", "audience", ...} objects')
        names = {f.name for f in dataclasses.fields(cls)}
        issuers = []
        for item in items:
            unknown = sorted(set(item) - names)
            if unknown:
                raise ConfigError(f"unknown field(s) {', '.join(unknown)} (known: {sorted(names)})")
            if "issuer" not in item or "audience" not in item:
                raise ConfigError("each trusted issuer needs 'issuer' and 'audience'")
            issuers.append(cls(**item))
        return tuple(issuers)


@dataclass(frozen=True, slots=True)
class RemoteToken:
    """A verified bearer token from a trusted issuer."""

    token: str
    user_id: str
    session_id: str | None
    issuer: str
    issued_at: datetime
    expires_at: datetime
    """The token's ``exp`` (it is accepted until ``exp`` plus the leeway)."""
    claims: Mapping[str, Any]


def peek_issuer(token: str) -> str | None:
    """The ``iss`` of an unverified token (to pick the keys to verify it with), or ``None``."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 12000:
        return None
    payload = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    return iss if isinstance(iss, str) else None


class TrustedIssuers:
    """Verifies bearer tokens of the configured trusted issuers.

    Args:
        issuers: the issuers (from :attr:`AuthConfig.trusted_issuers`).
        own_issuer: our own ``iss``, which may not be listed.
        clock: the engine's clock.
        leeway: tolerated clock skew for ``exp``, ``iat`` and ``nbf``.
        client: an ``httpx.AsyncClient`` for the key fetches (default: one per issuer).

    Raises:
        ConfigError: our own issuer is listed as a trusted one.
    """

    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        *,
        own_issuer: str,
        clock: Callable[[], datetime],
        leeway: timedelta = DEFAULT_LEEWAY,
        client: httpx.AsyncClient | None = None,
        **cache_options: Any,
    ) -> None:
        self._issuers = {i.issuer: i for i in issuers}
        if own_issuer in self._issuers or own_issuer + "/" in self._issuers:
            raise ConfigError(
                f"trusted_issuers lists {own_issuer}, which is this site's own issuer"
            )
        self._caches = {
            i.issuer: JwksCache(
                issuer=None if i.jwks_url else i.issuer,
                jwks_url=i.jwks_url,
                algorithms=ALGORITHMS,
                client=client,
                clock=clock,
                **cache_options,
            )
            for i in issuers
        }
        self._clock = clock
        self._leeway = leeway
        self._verified: OrderedDict[str, RemoteToken] = OrderedDict()

    def cache_for(self, issuer: str) -> JwksCache | None:
        """The key cache of a trusted issuer (OpenID sign-in with the same issuer may share it)."""
        return self._caches.get(issuer)

    def __contains__(self, issuer: object) -> bool:
        return issuer in self._issuers

    def issued(self, state: AuthState) -> bool:
        """Whether ``state`` was authenticated by a trusted issuer's token (not one of ours).

        Such a state names a user and session of *that* issuer: our ``users`` and
        ``auth_sessions`` rows, and the endpoints that act on our sessions, never apply to it.
        """
        return state.source == "bearer" and state.issuer in self._issuers

    async def verify(self, token: str, *, now: datetime | None = None) -> RemoteToken | None:
        """Verify ``token`` if a trusted issuer issued it; ``None`` when its ``iss`` is not one of
        them (it may be ours).

        Raises:
            TokenError: the token names a trusted issuer but fails a check (``reason`` says
                which, ``issuer_unavailable`` when its keys cannot be fetched).
        """
        cached = self._verified.get(token)
        if cached is not None:
            when = now if now is not None else self._clock()
            if when >= cached.expires_at + self._leeway:
                del self._verified[token]
                raise TokenError("expired")
            self._verified.move_to_end(token)
            return cached
        iss = peek_issuer(token)
        trusted = self._issuers.get(iss) if iss is not None else None
        if trusted is None:
            return None
        claims = await self._caches[trusted.issuer].verify(
            token,
            audience=trusted.audience,
            issuer=trusted.issuer,
            leeway=self._leeway,
            require=("sub", "iss", "aud", "exp", "iat"),
        )
        verified = _remote_token(token, trusted, claims)
        self._verified[token] = verified
        if len(self._verified) > CACHE_SIZE:
            self._verified.popitem(last=False)
        return verified

    async def aclose(self) -> None:
        """Close the HTTP clients of the key caches."""
        for cache in self._caches.values():
            await cache.aclose()


def _remote_token(token: str, trusted: TrustedIssuer, claims: Mapping[str, Any]) -> RemoteToken:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise TokenError("invalid_claims", "sub must be a non-empty string")
    session_id: str | None
    if trusted.subject == "convex":
        user_id, bar, session_id = sub.partition("|")
        if not bar or not user_id or not session_id or "|" in session_id:
            raise TokenError("invalid_claims", "sub must be Convex Auth's 'userId|sessionId'")
    else:
        user_id = sub
        sid = claims.get("sid")
        session_id = sid if isinstance(sid, str) and sid else None
    return RemoteToken(
        token,
        user_id,
        session_id,
        trusted.issuer,
        datetime.fromtimestamp(claims["iat"], timezone.utc),
        datetime.fromtimestamp(claims["exp"], timezone.utc),
        MappingProxyType(dict(claims)),
    )
