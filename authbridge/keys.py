"""Signing keys: load, generate, identify and publish them.

Keys load once into key objects (PEM PKCS#8 or JWK); several may be configured: the newest (last)
signs, all verify. A key's ``kid`` is its RFC 7638 JWK thumbprint. Development keys kept in the
database are read and written by :mod:`authbridge.store.keys`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from .errors import ConfigError

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "KeySet",
    "SigningKey",
    "generate_private_key_pem",
    "jwk_thumbprint",
]

Algorithm = Literal["ES256", "RS256", "EdDSA"]
"""JWT signing algorithms authbridge issues and accepts."""

ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)
"""Every :data:`Algorithm`, in preference order (the first is the default)."""

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
        """Wrap a ``cryptography`` private key object.

        Raises:
            ConfigError: not a P-256, RSA (2048 bits or more) or Ed25519 key.
        """
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

    def private_key_material(self) -> list[bytes]:
        """Each private key as PKCS#8 DER, in order (what sealing keys are derived from)."""
        return [
            key.private_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            for key in self._keys.values()
            if key.private_key is not None
        ]

    def derived_secrets(self, purpose: str) -> list[bytes]:
        """Symmetric keys for ``purpose`` derived from each private key, the signing key's
        first (HMAC-SHA256 over the key's PKCS#8 DER: every instance sharing the keys derives
        the same secrets; rotating the keys rotates them)."""
        signers = [self.signing_key] + [
            k
            for k in self._keys.values()
            if k.private_key is not None and k.kid != self.signing_key.kid
        ]
        out: list[bytes] = []
        for key in signers:
            assert key.private_key is not None
            der = key.private_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            out.append(hmac.new(der, b"authbridge:" + purpose.encode(), hashlib.sha256).digest())
        return out
