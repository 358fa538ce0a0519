"""An async cache of one issuer's signing keys (its JWK set), and JWT verification with it.

Shared by OpenID Connect sign-in (ID tokens) and trusted issuers (bearer tokens minted elsewhere):
one :class:`JwksCache` per issuer. PyJWT's ``PyJWKClient`` is synchronous and would block the event
loop; this one fetches with ``httpx.AsyncClient``.

* Where keys come from: an explicit ``jwks_url``, or OpenID discovery from ``issuer``
  (``<issuer>/.well-known/openid-configuration`` → ``jwks_uri``; the document's ``issuer`` must
  equal the configured one, which defeats mix-ups). The discovery document is cached the same way
  and is available to callers (:meth:`JwksCache.metadata`).
* Freshness: ``Cache-Control: max-age`` is honoured, clamped to ``[min_ttl, max_ttl]``
  (``default_ttl`` without one): a ``max-age=0`` issuer is not fetched on every request.
* One fetch in flight: concurrent callers that find the cache cold or stale await the same fetch.
* Unknown ``kid``: one refetch, then none before ``refetch_cooldown`` has passed since the last
  fetch — forged kids cannot make us hammer the issuer.
* Keys without ``kid`` (Convex Auth publishes them) are tried in turn, chosen by key type and curve
  for the token's algorithm; a token that none of them verifies triggers the same bounded refetch
  as an unknown kid (such an issuer rotates keys without a new kid to notice).
* Issuer down or slow: every fetch is bounded in time (``timeout``, the whole request, not just
  one read) and size; a failed fetch keeps the stale keys serving (up to ``max_stale`` past their
  expiry) and is retried after ``refetch_cooldown``. A cold cache with the issuer down raises
  ``TokenError("issuer_unavailable")``.
* The algorithm allow-list is checked before any key lookup; symmetric algorithms and ``none`` can
  never be allowed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import jwt

from ._extras import require
from .errors import ConfigError, TokenError

try:
    import httpx
except ImportError:  # pragma: no cover - without the [trusted] extra; JwksCache refuses to start
    httpx = None  # type: ignore[assignment]

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DEFAULT_LEEWAY",
    "JwksCache",
    "check_fetch_url",
    "tls_context",
]

logger = logging.getLogger("authbridge.jwks")

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Every algorithm a :class:`JwksCache` may allow (public-key signatures only)."""

DEFAULT_LEEWAY = timedelta(seconds=60)
"""Tolerated clock skew between us and an issuer for ``exp``, ``iat`` and ``nbf``."""

_KEY_TYPES: dict[str, tuple[str, frozenset[str] | None]] = {
    **{alg: ("RSA", None) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
_MAX_TOKEN_CHARS = 16384
_MAX_TIMESTAMP = 253402300799
_DISCOVERY_PATH = "/.well-known/openid-configuration"

T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


_TLS: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """One TLS context (system defaults, certifi's CA bundle) for every outgoing client:
    loading the CA bundle costs tens of milliseconds of CPU, too much to pay per request."""
    global _TLS
    if _TLS is None:
        import certifi

        _TLS = ssl.create_default_context(cafile=certifi.where())
    return _TLS


def check_fetch_url(url: str, what: str) -> str:
    """Accept ``url`` as a place to fetch keys or metadata from: ``https``, or plain ``http`` to a
    loopback host (development and tests). Returns the URL.

    Raises:
        ConfigError: any other scheme, or no host.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host:
        if host == "localhost":
            return url
        try:
            if ipaddress.ip_address(host).is_loopback:
                return url
        except ValueError:
            pass
    raise ConfigError(f"{what} must be an https URL (http only for loopback hosts): {url!r}")


class _FetchFailed(Exception):
    """A fetch did not produce a usable document (the message says why)."""


@dataclass(frozen=True, slots=True)
class _Key:
    """One usable public key of the set, prepared for each allowed algorithm it fits."""

    kid: str | None
    by_algorithm: Mapping[str, jwt.PyJWK]


@dataclass(frozen=True, slots=True)
class _KeySet:
    keys: tuple[_Key, ...]

    def matching(self, alg: str, kid: str | None) -> list[jwt.PyJWK]:
        if kid is not None:
            named = [
                k.by_algorithm[alg] for k in self.keys if k.kid == kid and alg in k.by_algorithm
            ]
            if named:
                return named
        # Keys published without a kid fit any token whose algorithm they can verify; a token
        # without a kid may have been signed by any key of the right type.
        return [
            k.by_algorithm[alg]
            for k in self.keys
            if alg in k.by_algorithm and (k.kid is None or kid is None)
        ]

    def has_kid(self, kid: str) -> bool:
        return any(k.kid == kid for k in self.keys)


class _Cached(Generic[T]):
    """One fetched document: its value, freshness, the shared in-flight fetch, failure backoff."""

    def __init__(
        self,
        cache: JwksCache,
        what: str,
        url: Callable[[], Awaitable[str]],
        parse: Callable[[Any], T],
    ) -> None:
        self._cache = cache
        self._what = what
        self._url = url
        self._parse = parse
        self.value: T | None = None
        self.expires_at: datetime | None = None
        self.last_attempt: datetime | None = None
        self.retry_at: datetime | None = None
        self.fetches = 0
        self._inflight: asyncio.Future[None] | None = None

    async def get(self) -> T:
        """The value, fetched first when missing or expired (stale when the fetch fails).

        Raises:
            TokenError: ``issuer_unavailable`` when there is no usable value.
        """
        now = self._cache.clock()
        if self.value is not None and self.expires_at is not None:
            if now < self.expires_at:
                return self.value
            # A fetch failed recently: keep serving the stale copy until the retry is due.
            backing_off = self.retry_at is not None and now < self.retry_at
            if backing_off and now < self.expires_at + self._cache.max_stale:
                return self.value
        return await self.refetch()

    def may_refetch(self) -> bool:
        """Whether the cooldown since the last fetch attempt has passed."""
        return (
            self.last_attempt is None
            or self._cache.clock() >= self.last_attempt + self._cache.refetch_cooldown
        )

    async def refetch(self) -> T:
        """Fetch now (joining a fetch already in flight); stale on failure when allowed.

        Raises:
            TokenError: ``issuer_unavailable`` when the fetch failed and nothing usable is cached.
        """
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._fetch())
            # Retrieve the outcome even if every waiter was cancelled (no "never retrieved" noise).
            self._inflight.add_done_callback(_consume)
        try:
            await asyncio.shield(self._inflight)
        except _FetchFailed as exc:
            stale = self.value
            limit = (self.expires_at or self._cache.clock()) + self._cache.max_stale
            if stale is not None and self._cache.clock() < limit:
                logger.warning("%s: %s; serving the cached copy", self._what, exc)
                return stale
            logger.error("%s: %s", self._what, exc)
            raise TokenError("issuer_unavailable", f"{self._what}: {exc}") from exc
        assert self.value is not None
        return self.value

    async def _fetch(self) -> None:
        started = self._cache.clock()
        self.last_attempt = started
        self.fetches += 1
        try:
            url = await self._url()
            document, ttl = await self._cache.fetch_json(url)
            value = self._parse(document)
        except _FetchFailed:
            self.retry_at = started + self._cache.refetch_cooldown
            raise
        except TokenError as exc:  # the discovery document this URL depends on is unavailable
            self.retry_at = started + self._cache.refetch_cooldown
            raise _FetchFailed(str(exc)) from exc
        self.value = value
        self.expires_at = started + ttl
        self.retry_at = None


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class JwksCache:
    """Keys (and, with ``issuer``, OpenID metadata) of one issuer, fetched asynchronously.

    Args:
        issuer: the issuer identifier; enables discovery and is the default ``iss`` to expect.
        jwks_url: where the key set is; without it, discovery's ``jwks_uri`` is used.
        algorithms: the allow-list (a subset of :data:`ASYMMETRIC_ALGORITHMS`).
        client: an ``httpx.AsyncClient`` to fetch with (its owner closes it); by default each
            fetch opens and closes its own.
        clock: returns the current UTC time (injected by tests).
        min_ttl / default_ttl / max_ttl: the ``max-age`` floor, the TTL without one, the ceiling.
        refetch_cooldown: the least time between two fetches caused by unknown kids, and the wait
            before retrying after a failed fetch.
        max_stale: how long past their expiry cached keys keep serving while the issuer fails.
        timeout: the longest one fetch may take, end to end.
        max_bytes: the largest document accepted.
        check_discovery_issuer: require the discovery document's ``issuer`` to equal ``issuer``
            (turn off only for issuers whose metadata holds a template, e.g. Microsoft ``common``).

    Raises:
        ConfigError: neither ``issuer`` nor ``jwks_url``, a disallowed algorithm, a bad URL.
    """

    def __init__(
        self,
        *,
        issuer: str | None = None,
        jwks_url: str | None = None,
        algorithms: Iterable[str] = ("RS256", "ES256"),
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] | None = None,
        min_ttl: timedelta = timedelta(seconds=60),
        default_ttl: timedelta = timedelta(minutes=10),
        max_ttl: timedelta = timedelta(hours=24),
        refetch_cooldown: timedelta = timedelta(seconds=30),
        max_stale: timedelta = timedelta(hours=24),
        timeout: timedelta = timedelta(seconds=5),
        max_bytes: int = 512 * 1024,
        check_discovery_issuer: bool = True,
    ) -> None:
        if client is None:
            require("httpx", "trusted", "Tokens from trusted issuers (fetching their keys)")
        if issuer is None and jwks_url is None:
            raise ConfigError("a JWKS cache needs an issuer (for discovery) or a jwks_url")
        if issuer is not None:
            check_fetch_url(issuer, "issuer")
        if jwks_url is not None:
            check_fetch_url(jwks_url, "jwks_url")
        allowed = frozenset(algorithms)
        bad = sorted(allowed - ASYMMETRIC_ALGORITHMS)
        if bad or not allowed:
            raise ConfigError(
                f"JWKS algorithms must be among {sorted(ASYMMETRIC_ALGORITHMS)}; got {bad or '[]'}"
            )
        if not timedelta(0) <= min_ttl <= default_ttl <= max_ttl:
            raise ConfigError("JWKS TTLs must satisfy 0 <= min_ttl <= default_ttl <= max_ttl")
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.algorithms = allowed
        self.clock: Callable[[], datetime] = clock or _utcnow
        self.min_ttl = min_ttl
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl
        self.refetch_cooldown = refetch_cooldown
        self.max_stale = max_stale
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.check_discovery_issuer = check_discovery_issuer
        self._client = client
        self._jwt = jwt.PyJWT()
        self._metadata: _Cached[Mapping[str, Any]] = _Cached(
            self, f"OpenID metadata of {issuer}", self._metadata_url, self._parse_metadata
        )
        self._keys: _Cached[_KeySet] = _Cached(
            self, f"JWKS of {jwks_url or issuer}", self._jwks_url, self._parse_keys
        )

    # -- fetching ----------------------------------------------------------------------------------

    @property
    def fetch_count(self) -> int:
        """How many times the key set was fetched (attempts, including failed ones)."""
        return self._keys.fetches

    @property
    def metadata_fetch_count(self) -> int:
        """How many times the discovery document was fetched (attempts)."""
        return self._metadata.fetches

    def _new_client(self) -> httpx.AsyncClient:
        seconds = self.timeout.total_seconds()
        return httpx.AsyncClient(
            timeout=httpx.Timeout(seconds, connect=min(seconds, 3.0)),
            follow_redirects=False,
            headers={"Accept": "application/json"},
            verify=tls_context(),
        )

    async def aclose(self) -> None:
        """Kept for symmetry: the cache holds no connection between fetches (it opens one per
        fetch unless given a client, which its owner closes)."""

    async def fetch_json(self, url: str) -> tuple[Any, timedelta]:
        """GET ``url`` within the time and size bounds: the JSON document and how long to keep it.

        Raises:
            _FetchFailed: network error, timeout, non-200 status, oversize or invalid JSON.
        """
        try:
            return await asyncio.wait_for(self._get(url), self.timeout.total_seconds())
        except asyncio.TimeoutError as exc:
            raise _FetchFailed(f"no answer from {url} within {self.timeout}") from exc
        except httpx.HTTPError as exc:
            raise _FetchFailed(f"{type(exc).__name__} fetching {url}") from exc

    async def _get(self, url: str) -> tuple[Any, timedelta]:
        if self._client is not None:
            return await self._get_with(self._client, url)
        # Fetches are rare (once per cache period): a client per fetch holds no connection that
        # could outlive the event loop it was made on.
        async with self._new_client() as client:
            return await self._get_with(client, url)

    async def _get_with(self, client: httpx.AsyncClient, url: str) -> tuple[Any, timedelta]:
        async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise _FetchFailed(f"HTTP {response.status_code} from {url}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise _FetchFailed(f"{url} answered more than {self.max_bytes} bytes")
            ttl = self._ttl(response.headers.get("cache-control", ""))
        try:
            return json.loads(bytes(body)), ttl
        except ValueError as exc:
            raise _FetchFailed(f"{url} did not answer JSON") from exc

    def _ttl(self, cache_control: str) -> timedelta:
        ttl = self.default_ttl
        for directive in cache_control.lower().split(","):
            name, _, value = directive.strip().partition("=")
            if name in ("no-store", "no-cache"):
                ttl = timedelta(0)
            elif name == "max-age":
                try:
                    ttl = timedelta(seconds=max(0, int(value.strip().strip('"'))))
                except (ValueError, OverflowError):
                    continue
        return min(max(ttl, self.min_ttl), self.max_ttl)

    async def _metadata_url(self) -> str:
        if self.issuer is None:
            raise _FetchFailed("no issuer configured for discovery")
        return self.issuer.rstrip("/") + _DISCOVERY_PATH

    async def _jwks_url(self) -> str:
        if self.jwks_url is not None:
            return self.jwks_url
        metadata = await self._metadata.get()
        return str(metadata["jwks_uri"])

    def _parse_metadata(self, document: Any) -> Mapping[str, Any]:
        if not isinstance(document, dict):
            raise _FetchFailed("the discovery document is not a JSON object")
        if self.check_discovery_issuer and document.get("issuer") != self.issuer:
            raise _FetchFailed(
                f"the discovery document names issuer {document.get('issuer')!r}, "
                f"not {self.issuer!r}"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise _FetchFailed("the discovery document has no jwks_uri")
        try:
            check_fetch_url(jwks_uri, "jwks_uri")
        except ConfigError as exc:
            raise _FetchFailed(str(exc)) from exc
        return MappingProxyType(document)

    def _parse_keys(self, document: Any) -> _KeySet:
        items = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(items, list):
            raise _FetchFailed("the JWKS document has no 'keys' list")
        keys: list[_Key] = []
        for item in items:
            key = self._prepare(item)
            if key is not None:
                keys.append(key)
        if not keys:
            raise _FetchFailed("the JWKS document holds no usable signing key")
        return _KeySet(tuple(keys))

    def _prepare(self, item: Any) -> _Key | None:
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            return None
        kid = item.get("kid")
        if kid is not None and not isinstance(kid, str):
            return None
        prepared: dict[str, jwt.PyJWK] = {}
        for alg in self.algorithms:
            kty, curves = _KEY_TYPES[alg]
            if item.get("kty") != kty or (curves is not None and item.get("crv") not in curves):
                continue
            if "alg" in item and item["alg"] != alg:
                continue
            if "d" in item:  # a private key published by mistake is not trusted for anything
                return None
            try:
                prepared[alg] = jwt.PyJWK(item, algorithm=alg)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
                continue
        return _Key(kid, MappingProxyType(prepared)) if prepared else None

    # -- public operations -------------------------------------------------------------------------

    async def metadata(self) -> Mapping[str, Any]:
        """The issuer's OpenID discovery document (cached like the keys).

        Raises:
            TokenError: ``issuer_unavailable`` (no issuer configured, or it cannot be fetched).
        """
        if self.issuer is None:
            raise TokenError("issuer_unavailable", "no issuer configured for discovery")
        return await self._metadata.get()

    async def keys_for(self, alg: str, kid: str | None) -> Sequence[jwt.PyJWK]:
        """The keys that may have signed a token with this header (the allow-list checked first).

        Raises:
            TokenError: ``invalid_algorithm``, ``unknown_key`` or ``issuer_unavailable``.
        """
        if alg not in self.algorithms:
            raise TokenError("invalid_algorithm", f"algorithm {alg!r} is not accepted")
        keys = await self._keys.get()
        found = keys.matching(alg, kid)
        if found:
            return found
        if kid is not None and keys.has_kid(kid):
            raise TokenError("invalid_algorithm", f"key {kid!r} does not sign with {alg!r}")
        if self._keys.may_refetch():
            logger.info("unknown key %r for %s: fetching the key set again", kid, self._keys_what)
            keys = await self._keys.refetch()
            found = keys.matching(alg, kid)
            if found:
                return found
        raise TokenError("unknown_key", f"no key {kid!r} for {alg}")

    @property
    def _keys_what(self) -> str:
        return self.jwks_url or f"issuer {self.issuer}"

    async def verify(
        self,
        token: str,
        *,
        audience: str | Sequence[str],
        issuer: str | Callable[[Mapping[str, Any]], bool] | None = None,
        leeway: timedelta = DEFAULT_LEEWAY,
        require: Sequence[str] = ("iss", "aud", "exp", "iat"),
    ) -> dict[str, Any]:
        """Verify ``token``'s signature with this issuer's keys and check its claims.

        Order: shape, algorithm allow-list (no key lookup for a refused algorithm), key by
        ``kid`` (or every key of the right type), signature, ``aud``, ``iss``, then ``exp`` /
        ``iat`` / ``nbf`` against the clock with ``leeway``.

        Args:
            audience: the accepted audience(s); the token's ``aud`` must contain one.
            issuer: the expected ``iss`` (default: the cache's issuer), or a predicate over the
                claims for issuers whose ``iss`` varies (multi-tenant).
            require: claims that must be present.

        Returns:
            The claims.

        Raises:
            TokenError: ``reason`` is ``malformed``, ``invalid_algorithm``, ``unknown_key``,
                ``issuer_unavailable``, ``invalid_signature``, ``invalid_audience``,
                ``invalid_issuer``, ``invalid_claims``, ``expired`` or ``not_yet_valid``.
            ConfigError: no issuer to compare ``iss`` with.
        """
        expected = issuer if issuer is not None else self.issuer
        if expected is None:
            raise ConfigError("verify needs an expected issuer")
        if len(token) > _MAX_TOKEN_CHARS or token.count(".") != 2 or not token.isascii():
            raise TokenError("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError("malformed") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise TokenError("invalid_algorithm", f"algorithm {alg!r} is not accepted")
        # keys_for must never see a kid that is not a string, whatever PyJWT does.
        if kid is not None and not isinstance(kid, str):  # pragma: no cover - PyJWT refuses it
            raise TokenError("malformed", "kid must be a string")
        claims = self._decode(token, alg, await self.keys_for(alg, kid), audience, require)
        if claims is None and self._signed_by_unnamed_key(kid) and self._keys.may_refetch():
            # An issuer that publishes keys without kids (Convex Auth) rotates them invisibly: a
            # token from its new key fails every cached key. Fetch once (cooldown-bound, like an
            # unknown kid) before calling the signature bad.
            logger.info("no cached key of %s verifies a token: fetching again", self._keys_what)
            fresh = (await self._keys.refetch()).matching(alg, kid)
            claims = self._decode(token, alg, fresh, audience, require)
        if claims is None:
            raise TokenError("invalid_signature")
        if isinstance(expected, str):
            if claims.get("iss") != expected:
                raise TokenError("invalid_issuer")
        elif not expected(claims):
            raise TokenError("invalid_issuer")
        self._check_times(claims, leeway)
        return claims

    def _signed_by_unnamed_key(self, kid: str | None) -> bool:
        keys = self._keys.value
        return kid is None or keys is None or not keys.has_kid(kid)

    def _decode(
        self,
        token: str,
        alg: str,
        keys: Sequence[jwt.PyJWK],
        audience: str | Sequence[str],
        require: Sequence[str],
    ) -> dict[str, Any] | None:
        """The claims, checked by the first key whose signature matches; ``None`` if none does."""
        for key in keys:
            try:
                return self._jwt.decode(
                    token,
                    key,
                    algorithms=[alg],
                    audience=audience,
                    options={
                        "verify_exp": False,
                        "verify_iat": False,
                        "verify_nbf": False,
                        "verify_iss": False,
                        "require": list(require),
                    },
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidAudienceError as exc:
                raise TokenError("invalid_audience") from exc
            except jwt.InvalidAlgorithmError as exc:
                raise TokenError("invalid_algorithm") from exc
            except jwt.MissingRequiredClaimError as exc:
                raise TokenError("invalid_claims", str(exc)) from exc
            except jwt.DecodeError as exc:
                raise TokenError("malformed") from exc
            except jwt.PyJWTError as exc:
                raise TokenError("invalid_claims", str(exc)) from exc
        return None

    def _check_times(self, claims: Mapping[str, Any], leeway: timedelta) -> None:
        now = self.clock().timestamp()
        slack = leeway.total_seconds()
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TokenError("invalid_claims", f"{name} must be a number")
            if not 0 <= value <= _MAX_TIMESTAMP:
                raise TokenError("invalid_claims", f"{name} must be a plausible timestamp")
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if exp is not None and now >= exp + slack:
            raise TokenError("expired")
        if iat is not None and iat > now + slack:
            raise TokenError("not_yet_valid", "iat is in the future")
        if nbf is not None and nbf > now + slack:
            raise TokenError("not_yet_valid")
