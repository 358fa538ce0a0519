"""Access tokens (JWTs): issue, verify, cache verifications, and the discovery documents.

* :class:`TokenIssuer` issues and verifies JWTs with ``sub = "<user_id>|<session_id>"``. Only the
  configured keys' algorithms are accepted (no ``none``, no HS/RS confusion). Time checks use the
  injected clock, so expiry boundaries are testable without sleeping.
* :class:`VerifyCache` serves repeat verifications of one token from memory (expiry and revocation
  re-checked on every call).
* The keys themselves live in :mod:`authbridge.keys` (re-exported here for existing imports).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import jwt

from .errors import TokenError, TokenIssueError
from .keys import Algorithm, KeySet, SigningKey, generate_private_key_pem, jwk_thumbprint

__all__ = [
    "RESERVED_CLAIMS",
    "AccessToken",
    "Algorithm",
    "KeySet",
    "SigningKey",
    "TokenIssuer",
    "VerifyCache",
    "generate_private_key_pem",
    "jwk_thumbprint",
    "openid_configuration",
]

RESERVED_CLAIMS = frozenset({"sub", "iss", "aud", "iat", "exp", "nbf", "jti", "auth_time", "amr"})
"""Claims that custom claims may not set."""

MAX_TOKEN_BYTES = 3800
"""Largest token issued: a cookie (name + value + attributes) must stay under 4096 bytes."""

IAT_LEEWAY = timedelta(seconds=60)
"""Tolerated clock skew for ``iat`` in the future (between instances / issuers)."""

VERIFY_CACHE_SIZE = 10_000
"""Verified tokens kept in memory per process."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A verified (or freshly issued) access token."""

    token: str
    user_id: str
    session_id: str
    issued_at: datetime
    expires_at: datetime
    claims: Mapping[str, Any]


def _split_subject(sub: Any) -> tuple[str, str]:
    if not isinstance(sub, str) or sub.count("|") != 1:
        raise TokenError("invalid_claims", "sub must be '<user_id>|<session_id>'")
    user_id, session_id = sub.split("|")
    if not user_id or not session_id:
        raise TokenError("invalid_claims", "sub must be '<user_id>|<session_id>'")
    return user_id, session_id


class TokenIssuer:
    """Issues and verifies access tokens for one issuer / audience."""

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        lifetime: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self._clock = clock
        self._jwt = jwt.PyJWT()

    def issue(
        self,
        user_id: str,
        session_id: str,
        extra_claims: Mapping[str, Any] | None = None,
        *,
        not_after: datetime | None = None,
        auth_time: datetime | None = None,
        amr: Sequence[str] = (),
    ) -> AccessToken:
        """Sign a token for this user and session.

        Args:
            not_after: the token expires by then at the latest (the session's absolute end, so
                a token never outlives its session).
            auth_time: when the user last authenticated in this session (the ``auth_time``
                claim, epoch seconds, as in OpenID Connect).
            amr: how they authenticated (the ``amr`` claim, RFC 8176 values such as ``"pwd"``).

        Raises:
            TokenIssueError: a custom claim names a reserved claim, or the token is too large.
        """
        now = self._clock()
        iat = int(now.timestamp())
        exp = iat + int(self.lifetime.total_seconds())
        if not_after is not None:
            exp = max(iat, min(exp, int(not_after.timestamp())))
        claims: dict[str, Any] = {}
        if extra_claims:
            clash = RESERVED_CLAIMS.intersection(extra_claims)
            if clash:
                raise TokenIssueError(
                    f"custom claims may not set reserved claims: {', '.join(sorted(clash))}",
                    code="ReservedClaim",
                )
            claims.update(extra_claims)
        claims.update(
            sub=f"{user_id}|{session_id}", iss=self.issuer, aud=self.audience, iat=iat, exp=exp
        )
        if auth_time is not None:
            claims["auth_time"] = int(auth_time.timestamp())
        if amr:
            claims["amr"] = list(amr)
        key = self.keys.signing_key
        assert key.private_key is not None  # KeySet guarantees a signer
        token = jwt.encode(
            claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid}
        )
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenIssueError(
                f"access token is {len(token)} bytes; cookies hold at most {MAX_TOKEN_BYTES}",
                code="TokenTooLarge",
            )
        return AccessToken(
            token,
            user_id,
            session_id,
            datetime.fromtimestamp(iat, timezone.utc),
            datetime.fromtimestamp(exp, timezone.utc),
            MappingProxyType(claims),
        )

    def verify(self, token: str) -> AccessToken:
        """Check signature, ``kid``, algorithm, ``iss``, ``aud``, ``sub``, ``iat`` and ``exp``.

        Raises:
            TokenError: with ``reason`` naming the first check that failed.
        """
        if len(token) > 8192 or token.count(".") != 2 or not token.isascii():
            raise TokenError("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError("malformed") from exc
        alg = header.get("alg")
        # A hostile header may carry any JSON value; only strings can name an algorithm.
        if not isinstance(alg, str) or alg not in self.keys.algorithms:
            raise TokenError("invalid_algorithm", f"algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError("unknown_key")
        if alg != key.algorithm:
            raise TokenError("invalid_algorithm", f"key {kid} does not sign with {alg!r}")
        try:
            claims = self._jwt.decode(
                token,
                key.public_key,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["sub", "iss", "aud", "iat", "exp"],
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise TokenError("invalid_signature") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenError("invalid_audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenError("invalid_issuer") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise TokenError("invalid_algorithm") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError("invalid_claims", str(exc)) from exc
        except jwt.DecodeError as exc:
            raise TokenError("malformed") from exc
        except jwt.PyJWTError as exc:
            raise TokenError("invalid_claims", str(exc)) from exc
        return self.check_claims(token, claims)

    def check_claims(self, token: str, claims: Mapping[str, Any]) -> AccessToken:
        """Time and subject checks on already signature-verified claims (uses the clock).

        Raises:
            TokenError: ``expired``, ``not_yet_valid`` or ``invalid_claims``.
        """
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise TokenError("invalid_claims", "exp and iat must be numbers")
        if isinstance(exp, bool) or isinstance(iat, bool):
            raise TokenError("invalid_claims", "exp and iat must be numbers")
        if not (0 <= iat <= _MAX_TIMESTAMP and 0 <= exp <= _MAX_TIMESTAMP):
            raise TokenError("invalid_claims", "exp and iat must be plausible timestamps")
        now = self._clock().timestamp()
        if now >= exp:
            raise TokenError("expired")
        if iat > now + IAT_LEEWAY.total_seconds():
            raise TokenError("not_yet_valid", "iat is in the future")
        nbf = claims.get("nbf")
        if nbf is not None and (not _is_number(nbf) or nbf > now + IAT_LEEWAY.total_seconds()):
            raise TokenError("not_yet_valid")
        user_id, session_id = _split_subject(claims.get("sub"))
        return AccessToken(
            token,
            user_id,
            session_id,
            datetime.fromtimestamp(iat, timezone.utc),
            datetime.fromtimestamp(exp, timezone.utc),
            MappingProxyType(dict(claims)),
        )


_MAX_TIMESTAMP = 253402300799
"""9999-12-31T23:59:59Z: the last instant a :class:`datetime` can hold."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class VerifyCache:
    """Verified access tokens by token string, bounded (least recently used goes first).

    Signature and claim checks run once per token; expiry and revocation are checked on every
    call, so a cached token is refused the moment it expires or its session is revoked.

    The cache lives as long as its engine: :meth:`open` gives it the issuer whose tokens it
    verifies, :meth:`close` empties it (while closed, :meth:`verify` raises ``RuntimeError``).
    """

    def __init__(
        self,
        issuer: TokenIssuer | None,
        revoked: Container[str],
        clock: Callable[[], datetime],
        size: int | None = None,
        *,
        closed_message: str = "the verification cache is closed",
    ) -> None:
        self.issuer = issuer
        self._closed_message = closed_message
        self._revoked = revoked
        self._clock = clock
        self._size = size if size is not None else VERIFY_CACHE_SIZE
        self._verified: OrderedDict[str, AccessToken] = OrderedDict()

    def verify(self, token: str, now: datetime | None = None) -> AccessToken:
        """Verify ``token`` (see :meth:`TokenIssuer.verify`), then expiry and revocation
        (at ``now``, when the caller has read the clock).

        Raises:
            TokenError: with a ``reason`` (``expired``, ``revoked``, ``invalid_signature``, ...).
            RuntimeError: the cache is closed.
        """
        cached = self._verified.get(token)
        if cached is None:
            issuer = self.issuer
            if issuer is None:
                raise RuntimeError(self._closed_message)
            cached = issuer.verify(token)
            self.remember(cached)
        elif (now if now is not None else self._clock()) >= cached.expires_at:
            del self._verified[token]
            raise TokenError("expired")
        else:
            self._verified.move_to_end(token)
        if cached.session_id in self._revoked:
            raise TokenError("revoked")
        return cached

    def open(self, issuer: TokenIssuer) -> None:
        """Verify ``issuer``'s tokens from now on."""
        self.issuer = issuer

    def close(self) -> None:
        """Forget every verified token and the issuer."""
        self.issuer = None
        self._verified.clear()

    def __len__(self) -> int:
        return len(self._verified)

    def __contains__(self, token: object) -> bool:
        return token in self._verified

    def remember(self, access: AccessToken) -> None:
        """Seed the cache with a token this process just issued."""
        self._verified[access.token] = access
        self._verified.move_to_end(access.token)
        if len(self._verified) > self._size:
            self._verified.popitem(last=False)


def openid_configuration(issuer: str, route_prefix: str, keys: KeySet) -> dict[str, Any]:
    """The discovery document (``/.well-known/openid-configuration``) of ``issuer``."""
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "authorization_endpoint": f"{issuer}{route_prefix}/signin",
        "token_endpoint": f"{issuer}{route_prefix}/token",
        "response_types_supported": ["code", "id_token", "token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": sorted(keys.algorithms),
    }
