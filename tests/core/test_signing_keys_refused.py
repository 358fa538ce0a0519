"""Signing keys authbridge refuses, each with a ConfigError that says what is wrong with it (and,
through ``AUTHBRIDGE_JWT_PRIVATE_KEYS``, which variable holds it); verify-only keys never sign."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa, x25519
from jwt.algorithms import ECAlgorithm

from authbridge import AuthConfig, ConfigError
from authbridge.keys import KeySet, SigningKey, generate_private_key_pem, jwk_thumbprint


def _pem(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )


P256_JWK: dict[str, Any] = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
PUBLIC_JWK = {k: v for k, v in P256_JWK.items() if k != "d"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (_pem(ec.generate_private_key(ec.SECP384R1())), "EC keys must use P-256"),
        (_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "at least 2048"),
        (_pem(dsa.generate_private_key(key_size=2048)), "unsupported key type DSAPrivateKey"),
        (_pem(ed448.Ed448PrivateKey.generate()), "unsupported key type"),
        ('{"kty": "EC", "crv": ', "invalid JWK JSON"),
        ('{"kty": "oct", "k": "c2VjcmV0"}', "unsupported JWK key type 'oct'"),
        (json.dumps(PUBLIC_JWK), "the JWK has no private part"),
        (json.dumps({**P256_JWK, "x": "AAAA"}), "invalid EC JWK"),
        ("[not json", "JWT private keys: invalid JSON"),
        ('{"keys": [', "JWT private keys: invalid JSON"),
    ],
    ids=[
        "p384",
        "rsa1024",
        "dsa",
        "ed448",
        "jwk-not-json",
        "symmetric-jwk",
        "public-jwk",
        "bad-point",
        "list-not-json",
        "set-not-json",
    ],
)
def test_an_unusable_private_key_is_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        KeySet.from_texts([text])
    with pytest.raises(ConfigError, match=f"AUTHBRIDGE_JWT_PRIVATE_KEYS: .*{problem}"):
        AuthConfig.from_env({"AUTHBRIDGE_JWT_PRIVATE_KEYS": text})


@pytest.mark.parametrize(
    ("jwk", "problem"),
    [
        (["not", "an", "object"], "a JWK must be a JSON object"),
        (P256_JWK, "expected a public JWK"),
        (
            ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True),
            "EC keys must use P-256",
        ),
    ],
    ids=["not-an-object", "private", "p384"],
)
def test_an_unusable_public_jwk_is_refused(jwk: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        SigningKey.from_public_jwk(jwk)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (dsa.generate_private_key(key_size=2048), "unsupported key type DSAPrivateKey"),
        (ed448.Ed448PrivateKey.generate(), "unsupported key type Ed448PrivateKey"),
        (x25519.X25519PrivateKey.generate(), "unsupported key type X25519PrivateKey"),
        (ec.generate_private_key(ec.SECP256K1()), "EC keys must use P-256"),
    ],
    ids=["dsa", "ed448", "x25519", "secp256k1"],
)
def test_a_key_object_of_another_kind_is_refused_with_its_type(key: Any, problem: str) -> None:
    """``SigningKey.from_private_key`` takes ``cryptography`` objects: callers without a type
    checker can hand it any."""
    with pytest.raises(ConfigError, match=problem):
        SigningKey.from_private_key(key)


def test_a_verify_only_key_has_no_private_pem_and_cannot_sign_alone() -> None:
    public = SigningKey.from_public_jwk(PUBLIC_JWK)
    assert public.kid == jwk_thumbprint(PUBLIC_JWK)
    with pytest.raises(ConfigError, match="has no private part"):
        public.private_pem()
    with pytest.raises(ConfigError, match="no private signing key configured"):
        KeySet([public])
    signer = SigningKey.load(generate_private_key_pem("EdDSA"))
    keys = KeySet([signer, public])
    assert keys.signing_key is signer
    assert len(keys.derived_secrets("cookies")) == 1


def test_a_thumbprint_needs_a_known_key_type() -> None:
    with pytest.raises(ConfigError, match="unsupported JWK key type 'oct'"):
        jwk_thumbprint({"kty": "oct", "k": "c2VjcmV0"})


def test_only_the_three_algorithms_are_generated() -> None:
    with pytest.raises(ConfigError, match="unsupported algorithm 'HS256'"):
        # Outside the Algorithm literal on purpose: callers without a type checker can pass it.
        generate_private_key_pem("HS256")  # type: ignore[arg-type]
