"""Keys and access tokens: algorithms, RFC 7638 key ids, JWKS, claims and every rejection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from authbridge import Auth, TokenError, TokenIssueError
from authbridge.config import Algorithm
from authbridge.tokens import (
    KeySet,
    SigningKey,
    TokenIssuer,
    generate_private_key_pem,
    jwk_thumbprint,
)
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory

ALGORITHMS: list[Algorithm] = ["ES256", "RS256", "EdDSA"]
ISSUER = "https://app.example.com"
AUDIENCE = "authbridge"

# RFC 7638 section 3.1: the example RSA key and its published thumbprint.
RFC7638_KEY = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
    "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Q"
    "vzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6We"
    "Zu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_int(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def independent_thumbprint(public_key: Any) -> str:
    """RFC 7638 by hand: required members, lexicographic order, no whitespace, SHA-256."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        x, y = (b64url(n.to_bytes(32, "big")) for n in (numbers.x, numbers.y))
        text = f'{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}'
    elif isinstance(public_key, rsa.RSAPublicKey):
        rsa_numbers = public_key.public_numbers()
        text = (
            f'{{"e":"{b64url_int(rsa_numbers.e)}","kty":"RSA","n":"{b64url_int(rsa_numbers.n)}"}}'
        )
    else:
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        text = f'{{"crv":"Ed25519","kty":"OKP","x":"{b64url(raw)}"}}'
    return b64url(hashlib.sha256(text.encode("ascii")).digest())


def private_jwk_text(pem: str) -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ECAlgorithm.to_jwk(key)
    if isinstance(key, rsa.RSAPrivateKey):
        return RSAAlgorithm.to_jwk(key)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return OKPAlgorithm.to_jwk(key)


@pytest.fixture(scope="module")
def pems() -> dict[Algorithm, str]:
    """One private key per algorithm (RSA generation is slow: once per module)."""
    return {alg: generate_private_key_pem(alg) for alg in ALGORITHMS}


def issuer_for(texts: list[str], clock: FakeClock, **kwargs: Any) -> TokenIssuer:
    options: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "lifetime": timedelta(hours=1),
        "clock": clock,
    }
    options.update(kwargs)
    return TokenIssuer(KeySet.from_texts(texts), **options)


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"x") -> str:
    def part(value: dict[str, Any]) -> str:
        return b64url(json.dumps(value, separators=(",", ":")).encode())

    return f"{part(header)}.{part(claims)}.{b64url(signature)}"


def good_claims(clock: FakeClock, **changes: Any) -> dict[str, Any]:
    now = int(clock().timestamp())
    claims: dict[str, Any] = {
        "sub": "user|session",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(changes)
    return claims


# -- keys -------------------------------------------------------------------------------------


def test_rfc7638_example_key_has_the_published_thumbprint() -> None:
    assert jwk_thumbprint(RFC7638_KEY) == RFC7638_THUMBPRINT
    assert SigningKey.from_public_jwk(RFC7638_KEY).kid == RFC7638_THUMBPRINT


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("form", ["pem", "jwk"])
def test_keys_load_from_pem_and_jwk_with_kid_the_rfc7638_thumbprint(
    pems: dict[Algorithm, str], algorithm: Algorithm, form: str
) -> None:
    text = pems[algorithm] if form == "pem" else private_jwk_text(pems[algorithm])
    key = SigningKey.load(text)
    assert key.algorithm == algorithm
    assert key.kid == independent_thumbprint(key.public_key)
    assert key.public_jwk["kid"] == key.kid
    assert key.kid == SigningKey.load(pems[algorithm]).kid


def test_generated_default_key_is_es256() -> None:
    assert SigningKey.load(generate_private_key_pem()).algorithm == "ES256"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        '{"kty": "oct", "k": "c2VjcmV0"}',
        '{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}',
        json.dumps({k: v for k, v in RFC7638_KEY.items()}),
    ],
)
def test_unusable_private_keys_raise_config_error(text: str) -> None:
    from authbridge import ConfigError

    with pytest.raises(ConfigError):
        SigningKey.load(text)


def test_small_rsa_and_non_p256_keys_are_refused() -> None:
    from authbridge import ConfigError

    for key in (
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
        ec.generate_private_key(ec.SECP384R1()),
    ):
        with pytest.raises(ConfigError):
            SigningKey.from_private_key(key)


def test_with_several_keys_the_last_signs_and_all_verify(
    pems: dict[Algorithm, str], clock: FakeClock
) -> None:
    texts = [pems["ES256"], pems["RS256"], pems["EdDSA"]]
    combined = issuer_for(texts, clock)
    assert combined.keys.signing_key.algorithm == "EdDSA"
    for text in texts:
        token = issuer_for([text], clock).issue("user", "session").token
        assert combined.verify(token).user_id == "user"
    assert jwt.get_unverified_header(combined.issue("u", "s").token)["alg"] == "EdDSA"


def test_a_key_listed_twice_counts_at_its_last_position(pems: dict[Algorithm, str]) -> None:
    keys = KeySet.from_texts([pems["ES256"], pems["EdDSA"], pems["ES256"]])
    assert keys.signing_key.algorithm == "ES256" and len(keys) == 2


def test_jwks_lists_every_key_without_private_parts(pems: dict[Algorithm, str]) -> None:
    keys = KeySet.from_texts(list(pems.values()))
    document = keys.jwks()
    assert [k["alg"] for k in document["keys"]] == ALGORITHMS
    for jwk in document["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi", "oth", "k"} & set(jwk)
        assert jwk["use"] == "sig"
        assert jwk["kid"] == jwk_thumbprint(jwk)
    json.dumps(document)


async def test_openid_configuration_points_at_the_jwks(auth_factory: AuthFactory) -> None:
    auth = await auth_factory(site_url="https://app.example.com/")
    document = auth.openid_configuration()
    assert document["issuer"] == "https://app.example.com"
    assert document["jwks_uri"] == "https://app.example.com/.well-known/jwks.json"
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]
    assert auth.jwks() == auth.keys.jwks()


# -- issuing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_issued_tokens_carry_the_standard_claims_and_kid(
    pems: dict[Algorithm, str], clock: FakeClock, algorithm: Algorithm
) -> None:
    issuer = issuer_for([pems[algorithm]], clock)
    access = issuer.issue("user-1", "session-1", {"role": "admin"})
    header = jwt.get_unverified_header(access.token)
    assert header["alg"] == algorithm
    assert header["kid"] == issuer.keys.signing_key.kid
    claims = jwt.decode(
        access.token,
        issuer.keys.signing_key.public_key,
        algorithms=[algorithm],
        audience=AUDIENCE,
        options={"verify_exp": False, "verify_iat": False},
    )
    now = int(clock().timestamp())
    assert claims == {
        "sub": "user-1|session-1",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
        "role": "admin",
    }
    assert access.expires_at == clock() + timedelta(hours=1)
    assert (access.user_id, access.session_id) == ("user-1", "session-1")


@pytest.mark.parametrize("claim", ["sub", "iss", "aud", "iat", "exp", "nbf", "jti"])
def test_custom_claims_cannot_override_reserved_claims(
    pems: dict[Algorithm, str], clock: FakeClock, claim: str
) -> None:
    with pytest.raises(TokenIssueError) as caught:
        issuer_for([pems["ES256"]], clock).issue("u", "s", {claim: "x", "ok": 1})
    assert caught.value.code == "ReservedClaim"
    assert claim in str(caught.value)


def test_too_large_tokens_fail_at_issue_time(pems: dict[Algorithm, str], clock: FakeClock) -> None:
    issuer = issuer_for([pems["ES256"]], clock)
    issuer.issue("u", "s", {"blob": "x" * 2000})
    with pytest.raises(TokenIssueError) as caught:
        issuer.issue("u", "s", {"blob": "x" * 4000})
    assert caught.value.code == "TokenTooLarge"


async def test_custom_claims_reach_tokens_issued_by_sign_in_and_refresh(
    auth_factory: AuthFactory,
) -> None:
    seen: list[tuple[str, str]] = []

    async def claims(user_id: str, session_id: str) -> dict[str, Any]:
        seen.append((user_id, session_id))
        return {"plan": "pro"}

    auth = await auth_factory(auth_kwargs={"custom_claims": claims})
    result = await auth.sign_up_with_password("claims@example.com", "password123")
    assert result.tokens.access.claims["plan"] == "pro"
    refreshed = await auth.refresh(result.tokens.refresh_token)
    assert auth.verify_token(refreshed.access.token).claims["plan"] == "pro"
    assert seen == [(result.user_id, result.session_id)] * 2


async def test_reserved_custom_claims_fail_sign_in_with_reserved_claim(
    auth_factory: AuthFactory,
) -> None:
    auth = await auth_factory(auth_kwargs={"custom_claims": lambda u, s: {"sub": "admin|x"}})
    with pytest.raises(TokenIssueError) as caught:
        await auth.sign_up_with_password("reserved@example.com", "password123")
    assert caught.value.code == "ReservedClaim"


# -- verifying --------------------------------------------------------------------------------


def test_a_fresh_token_verifies(pems: dict[Algorithm, str], clock: FakeClock) -> None:
    issuer = issuer_for([pems["ES256"]], clock)
    access = issuer.issue("u", "s")
    verified = issuer.verify(access.token)
    assert (verified.user_id, verified.session_id, verified.expires_at) == (
        "u",
        "s",
        access.expires_at,
    )


def _public_pem(pem: str) -> bytes:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _hs256_with_public_key(pem: str, kid: str, claims: dict[str, Any]) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the public key PEM."""
    unsigned = forge({"alg": "HS256", "typ": "JWT", "kid": kid}, claims).rsplit(".", 1)[0]
    mac = hmac.new(_public_pem(pem), unsigned.encode(), "sha256").digest()
    return f"{unsigned}.{b64url(mac)}"


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "admin|session"
    forged_payload = b64url(json.dumps(claims).encode())
    return f"{header}.{forged_payload}.{signature}"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("alg_none", "invalid_algorithm"),
        ("hs256_with_public_key", "invalid_algorithm"),
        ("alg_not_a_string", "invalid_algorithm"),
        ("unknown_kid", "unknown_key"),
        ("missing_kid", "unknown_key"),
        ("wrong_issuer", "invalid_issuer"),
        ("wrong_audience", "invalid_audience"),
        ("tampered_payload", "invalid_signature"),
        # The key named by kid is the wrong type for the header's algorithm.
        ("signed_by_another_key", "invalid_algorithm"),
        ("truncated", "malformed"),
        ("not_a_jwt", "malformed"),
        ("garbage_header", "malformed"),
        ("oversized", "malformed"),
        ("non_ascii", "malformed"),
        ("future_iat", "not_yet_valid"),
        ("expired", "expired"),
        ("missing_exp", "invalid_claims"),
        ("bad_subject", "invalid_claims"),
        ("absurd_exp", "invalid_claims"),
    ],
)
def test_verification_rejects_with_a_reason(
    pems: dict[Algorithm, str], clock: FakeClock, algorithm: Algorithm, attack: str, reason: str
) -> None:
    pem = pems[algorithm]
    issuer = issuer_for([pem], clock)
    kid = issuer.keys.signing_key.kid
    key = issuer.keys.signing_key.private_key
    assert key is not None
    now = int(clock().timestamp())

    def signed(claims: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid, **headers})

    other_algorithm: Algorithm = "ES256" if algorithm != "ES256" else "EdDSA"
    other_key = SigningKey.load(generate_private_key_pem(other_algorithm)).private_key
    assert other_key is not None

    builders: dict[str, Callable[[], str]] = {
        "alg_none": lambda: forge({"alg": "none", "kid": kid}, good_claims(clock), b""),
        "hs256_with_public_key": lambda: _hs256_with_public_key(pem, kid, good_claims(clock)),
        "alg_not_a_string": lambda: forge({"alg": ["ES256"], "kid": kid}, good_claims(clock)),
        "unknown_kid": lambda: signed(good_claims(clock), kid="someone-else"),
        "missing_kid": lambda: jwt.encode(good_claims(clock), key, algorithm=algorithm),
        "wrong_issuer": lambda: signed(good_claims(clock, iss="https://evil.example.com")),
        "wrong_audience": lambda: signed(good_claims(clock, aud="convex")),
        "tampered_payload": lambda: _tamper(issuer.issue("user", "session").token),
        "signed_by_another_key": lambda: jwt.encode(
            good_claims(clock), other_key, algorithm=other_algorithm, headers={"kid": kid}
        ),
        "truncated": lambda: issuer.issue("user", "session").token[:60],
        "not_a_jwt": lambda: "hello",
        "garbage_header": lambda: "!!!." + issuer.issue("u", "s").token.split(".", 1)[1],
        "oversized": lambda: "a" * 9000 + ".b.c",
        "non_ascii": lambda: "\udcff" + issuer.issue("u", "s").token,
        "future_iat": lambda: signed(good_claims(clock, iat=now + 3600, exp=now + 7200)),
        "expired": lambda: signed(good_claims(clock, iat=now - 7200, exp=now - 3600)),
        "missing_exp": lambda: signed({k: v for k, v in good_claims(clock).items() if k != "exp"}),
        "bad_subject": lambda: signed(good_claims(clock, sub="no-separator")),
        "absurd_exp": lambda: signed(good_claims(clock, exp=10**20)),
    }
    token = builders[attack]()
    with pytest.raises(TokenError) as caught:
        issuer.verify(token)
    assert caught.value.reason == reason
    assert caught.value.code == "InvalidToken"


def test_iat_slightly_in_the_future_is_tolerated(
    pems: dict[Algorithm, str], clock: FakeClock
) -> None:
    issuer = issuer_for([pems["ES256"]], clock)
    token = issuer.issue("u", "s").token
    clock.advance(-59)
    assert issuer.verify(token).user_id == "u"
    clock.advance(-2)
    with pytest.raises(TokenError) as caught:
        issuer.verify(token)
    assert caught.value.reason == "not_yet_valid"


@pytest.mark.parametrize(("offset", "valid"), [(-1, True), (0, False), (1, False)])
def test_token_expiry_boundary(
    pems: dict[Algorithm, str], clock: FakeClock, offset: int, valid: bool
) -> None:
    issuer = issuer_for([pems["ES256"]], clock)
    access = issuer.issue("u", "s")
    clock.advance(3600 + offset)
    if valid:
        assert issuer.verify(access.token).session_id == "s"
    else:
        with pytest.raises(TokenError) as caught:
            issuer.verify(access.token)
        assert caught.value.reason == "expired"


@pytest.mark.parametrize(("offset", "valid"), [(-1, True), (0, False)])
async def test_cached_verification_rechecks_expiry(
    auth_factory: AuthFactory, clock: FakeClock, offset: int, valid: bool
) -> None:
    auth: Auth = await auth_factory(jwt_duration=timedelta(minutes=5))
    result = await auth.sign_up_with_password("cache@example.com", "password123")
    token = result.tokens.access.token
    assert auth.verify_token(token).user_id == result.user_id  # now cached
    clock.advance(300 + offset)
    if valid:
        assert auth.verify_token(token).user_id == result.user_id
    else:
        for _ in range(2):  # the cache entry must not come back
            with pytest.raises(TokenError) as caught:
                auth.verify_token(token)
            assert caught.value.reason == "expired"


async def test_cached_verification_rechecks_revocation(auth_factory: AuthFactory) -> None:
    auth = await auth_factory()
    result = await auth.sign_up_with_password("revoked@example.com", "password123")
    token = result.tokens.access.token
    auth.verify_token(token)
    auth.verify_token(token)
    await auth.sign_out(result.session_id)
    with pytest.raises(TokenError) as caught:
        auth.verify_token(token)
    assert caught.value.reason == "revoked"


async def test_tokens_of_one_engine_are_refused_by_an_engine_with_other_keys(
    auth_factory: AuthFactory,
) -> None:
    first = await auth_factory()
    second = await auth_factory(jwt_private_keys=(generate_private_key_pem("ES256"),))
    result = await first.sign_up_with_password("keys@example.com", "password123")
    with pytest.raises(TokenError) as caught:
        second.verify_token(result.tokens.access.token)
    assert caught.value.reason == "unknown_key"


async def test_verification_cache_stays_bounded(
    auth_factory: AuthFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import authbridge.tokens

    monkeypatch.setattr(authbridge.tokens, "VERIFY_CACHE_SIZE", 3)
    auth = await auth_factory()
    for i in range(6):
        auth.verify_token(auth.issuer.issue(f"user{i}", "s").token)
    assert len(auth.verify_cache) == 3


async def test_verification_cache_is_emptied_on_close_and_serves_again_after_reopen(
    auth_factory: AuthFactory,
) -> None:
    auth = await auth_factory()
    result = await auth.sign_up_with_password("reopen@example.com", "password123")
    token = result.tokens.access.token
    cache = auth.verify_cache
    assert auth.verify_token(token).user_id == result.user_id
    assert token in cache
    await auth.close()
    assert len(cache) == 0
    # Closed, nothing verifies: not even a token that was verified before.
    with pytest.raises(RuntimeError, match="not open"):
        auth.verify_token(token)
    with pytest.raises(RuntimeError, match="not open"):
        cache.verify(token)
    await auth.open()
    assert auth.verify_cache is cache  # the middleware holds its verify method across reopens
    assert auth.verify_token(token).user_id == result.user_id
