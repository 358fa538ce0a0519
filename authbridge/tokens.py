"""Signing keys and access tokens (JWTs).

* Keys load once into key objects (PEM PKCS#8 or JWK); several may be configured: the newest
  (last) signs, all verify. A key's ``kid`` is its RFC 7638 JWK thumbprint.
* :class:`TokenIssuer` issues and verifies JWTs with ``sub = "<user_id>|<session_id>"``. Only the
  configured keys' algorithms are accepted (no ``none``, no HS/RS confusion). Time checks use the
  injected clock, so expiry boundaries are testable without sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from .config import Algorithm
from .errors import ConfigError, TokenError, TokenIssueError

__all__ = [
    "RESERVED_CLAIMS",
    "AccessToken",
    "KeySet",
    "SigningKey",
    "TokenIssuer",
    "generate_private_key_pem",
    "jwk_thumbprint",
]

RESERVED_CLAIMS = frozenset({"sub", "iss", "aud", "iat", "exp", "nbf", "jti"})
"""Claims that custom claims may not set."""

MAX_TOKEN_BYTES = 3800
"""Largest token issued: a cookie (name + value + attributes) must stay under 4096 bytes."""

IAT_LEEWAY = timedelta(seconds=60)
"""Tolerated clock skew for ``iat`` in the future (between instances / issuers)."""

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public JWK (base64url, no padding).

    Raises:
        ConfigError: the key type is not EC, RSA or OKP.
    """
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    kty = jwk.get("kty")
    if kty not in members:
        raise ConfigError(f"unsupported JWK key type {kty!r}")
    canonical = json.dumps({k: jwk[k] for k in members[kty]}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def _algorithm_for(key: PrivateKey | PublicKey) -> Algorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ConfigError(f"EC keys must use P-256 for ES256, not {key.curve.name}")
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ConfigError("RSA keys must be at least 2048 bits")
        return "RS256"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise ConfigError(f"unsupported key type {type(key).__name__}")


def _public_jwk(public_key: PublicKey) -> dict[str, Any]:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
    elif isinstance(public_key, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public_key, as_dict=True)
    return {k: v for k, v in jwk.items() if k in {"kty", "crv", "x", "y", "n", "e"}}


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key: its ``kid``, algorithm, key objects and public JWK."""

    kid: str
    algorithm: Algorithm
    public_key: PublicKey
    private_key: PrivateKey | None
    public_jwk: Mapping[str, Any]

    @classmethod
    def from_private_key(cls, private_key: PrivateKey) -> SigningKey:
        """Wrap a ``cryptography`` private key object."""
        algorithm = _algorithm_for(private_key)
        public_key = private_key.public_key()
        jwk = _public_jwk(public_key)
        kid = jwk_thumbprint(jwk)
        public_jwk = {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}
        return cls(kid, algorithm, public_key, private_key, public_jwk)

    @classmethod
    def from_public_jwk(cls, jwk: Mapping[str, Any]) -> SigningKey:
        """A verify-only key from a public JWK (e.g. one persisted in ``auth_keys``).

        Raises:
            ConfigError: the JWK is not a supported public key.
        """
        public_key = _load_jwk(jwk, private=False)
        if not isinstance(
            public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
        ):
            raise ConfigError("expected a public JWK")
        algorithm = _algorithm_for(public_key)
        plain = _public_jwk(public_key)
        kid = jwk_thumbprint(plain)
        return cls(
            kid, algorithm, public_key, None, {**plain, "kid": kid, "alg": algorithm, "use": "sig"}
        )

    @classmethod
    def load(cls, text: str) -> SigningKey:
        """Load a private key from PEM (PKCS#8 or traditional) or JWK JSON text.

        Raises:
            ConfigError: the text is not a supported private key.
        """
        text = text.strip()
        if text.startswith("{"):
            try:
                jwk = json.loads(text)
            except ValueError as exc:
                raise ConfigError("JWT private key: invalid JWK JSON") from exc
            key = _load_jwk(jwk, private=True)
        else:
            try:
                key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
            except (ValueError, TypeError, UnicodeEncodeError) as exc:
                raise ConfigError(
                    "JWT private key: not a valid unencrypted PEM private key"
                ) from exc
        if not isinstance(
            key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise ConfigError(f"JWT private key: unsupported key type {type(key).__name__}")
        return cls.from_private_key(key)

    def private_pem(self) -> str:
        """The private key as PKCS#8 PEM.

        Raises:
            ConfigError: this is a verify-only key.
        """
        if self.private_key is None:
            raise ConfigError(f"key {self.kid} has no private part")
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")


def _load_jwk(jwk: Any, *, private: bool) -> Any:
    if not isinstance(jwk, dict):
        raise ConfigError("a JWK must be a JSON object")
    kty = jwk.get("kty")
    loaders: dict[str, Callable[[str], Any]] = {
        "EC": ECAlgorithm.from_jwk,
        "RSA": RSAAlgorithm.from_jwk,
        "OKP": OKPAlgorithm.from_jwk,
    }
    if kty not in loaders:
        raise ConfigError(f"unsupported JWK key type {kty!r}")
    if private and "d" not in jwk:
        raise ConfigError("JWT private key: the JWK has no private part ('d')")
    try:
        return loaders[kty](json.dumps(jwk))
    except (ValueError, TypeError, KeyError, jwt.InvalidKeyError) as exc:
        raise ConfigError(f"invalid {kty} JWK") from exc


def generate_private_key_pem(algorithm: Algorithm = "ES256") -> str:
    """Generate a new private key for ``algorithm`` as PKCS#8 PEM."""
    key: PrivateKey
    if algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ConfigError(f"unsupported algorithm {algorithm!r}")
    return SigningKey.from_private_key(key).private_pem()


class KeySet:
    """Several keys: the last key with a private part signs; every key verifies."""

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        self._keys: dict[str, SigningKey] = {}
        for key in keys:
            # A key listed twice counts at its last position ("the last one signs").
            self._keys.pop(key.kid, None)
            self._keys[key.kid] = key
        signers = [k for k in self._keys.values() if k.private_key is not None]
        if not signers:
            raise ConfigError("no private signing key configured (AUTHBRIDGE_JWT_PRIVATE_KEYS)")
        self.signing_key = signers[-1]
        self.algorithms = frozenset(k.algorithm for k in self._keys.values())

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> KeySet:
        """Load private keys from PEM/JWK texts (a JWK set ``{"keys": [...]}`` is accepted).

        Raises:
            ConfigError: a key cannot be loaded.
        """
        keys: list[SigningKey] = []
        for text in texts:
            stripped = text.strip()
            if stripped.startswith("[") or (stripped.startswith("{") and '"keys"' in stripped):
                try:
                    parsed = json.loads(stripped)
                except ValueError as exc:
                    raise ConfigError("JWT private keys: invalid JSON") from exc
                items = parsed["keys"] if isinstance(parsed, dict) else parsed
                keys.extend(SigningKey.load(json.dumps(item)) for item in items)
            else:
                keys.append(SigningKey.load(stripped))
        return cls(keys)

    def get(self, kid: str) -> SigningKey | None:
        """The key with this ``kid``, if any."""
        return self._keys.get(kid)

    def __iter__(self) -> Any:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def jwks(self) -> dict[str, Any]:
        """The public JWK set document (never any private part)."""
        return {"keys": [dict(k.public_jwk) for k in self._keys.values()]}


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
    ) -> AccessToken:
        """Sign a token for this user and session.

        Args:
            not_after: the token expires by then at the latest (the session's absolute end, so
                a token never outlives its session).

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
