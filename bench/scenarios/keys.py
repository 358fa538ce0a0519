"""Signing keys and tokens shared by the JWT baselines (made with ``cryptography``)."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://auth.bench.invalid"
AUDIENCE = "authbridge-bench"
SUBJECT = "user-1"

Algorithm = Literal["ES256", "RS256"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class KeyPair:
    algorithm: Algorithm
    private_key: PrivateKey
    public_key: PublicKey
    private_pem: str
    public_pem: str


@functools.cache
def keypair(algorithm: Algorithm) -> KeyPair:
    """One key pair per algorithm and process (RSA generation is slow)."""
    private_key: PrivateKey
    if algorithm == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_key = private_key.public_key()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_pem = public_key.public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode("ascii")
    return KeyPair(algorithm, private_key, public_key, private_pem, public_pem)


def load_public_pem(pem: str) -> PublicKey:
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise TypeError(f"unsupported public key type {type(key).__name__}")
    return key


def mint(
    pair: KeyPair,
    subject: str = SUBJECT,
    *,
    lifetime: int = 3600,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    extra: dict[str, Any] | None = None,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        **(extra or {}),
    }
    return jwt.encode(claims, pair.private_key, algorithm=pair.algorithm)
