"""What the JWKS cache accepts from an issuer, document by document: discovery documents and key
sets that cannot be used make the issuer unavailable (never a key to trust), unusable keys in a
set are skipped, and malformed tokens are refused before any fetch. Served by a real HTTP server
on 127.0.0.1 that answers whatever the test wrote."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from authbridge.errors import ConfigError, TokenError
from authbridge.jwks import JwksCache, check_fetch_url
from tests.toolkit.servers import serve

AUD = "my-client"


class FakeClock(Protocol):
    """The shared ``clock`` fixture (``tests/conftest.py``)."""

    def __call__(self) -> datetime: ...

    def advance(self, delta: float | timedelta) -> None: ...


@dataclass
class Documents:
    """Answers each path with the bytes the test stored (404 otherwise) and counts requests."""

    url: str = ""
    bodies: dict[str, bytes] = field(default_factory=dict)
    cache_control: str | None = None
    requests: Counter[str] = field(default_factory=Counter)

    def put(self, path: str, document: Any) -> None:
        self.bodies[path] = json.dumps(document).encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.requests[scope["path"]] += 1
        body = self.bodies.get(scope["path"])
        headers = [(b"content-type", b"application/json")]
        if self.cache_control is not None:
            headers.append((b"cache-control", self.cache_control.encode()))
        await send(
            {
                "type": "http.response.start",
                "status": 404 if body is None else 200,
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": body or b"{}"})


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = "key-1"
PUBLIC_JWK: dict[str, Any] = {
    **RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True),
    "kid": KID,
    "use": "sig",
}


@pytest.fixture
async def documents() -> AsyncIterator[Documents]:
    served = Documents()
    async with serve(served) as url:
        served.url = url
        served.put("/.well-known/openid-configuration", {"issuer": url, "jwks_uri": url + "/jwks"})
        served.put("/jwks", {"keys": [PUBLIC_JWK]})
        yield served


@pytest.fixture
async def caches() -> AsyncIterator[list[JwksCache]]:
    made: list[JwksCache] = []
    yield made
    for cache in made:
        await cache.aclose()


@pytest.fixture
def cache(documents: Documents, clock: FakeClock, caches: list[JwksCache]) -> JwksCache:
    made = JwksCache(issuer=documents.url, clock=clock)
    caches.append(made)
    return made


def token(issuer: str, clock: Callable[[], datetime], *, kid: Any = KID, **claims: Any) -> str:
    now = int(clock().timestamp())
    payload = {"iss": issuer, "sub": "user-1", "aud": AUD, "iat": now, "exp": now + 300, **claims}
    return jwt.encode(payload, KEY, algorithm="RS256", headers={"kid": kid})


async def reason(cache: JwksCache, text: str) -> str:
    with pytest.raises(TokenError) as caught:
        await cache.verify(text, audience=AUD)
    return caught.value.reason


# -- discovery ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "discovery",
    [
        b"<html>maintenance</html>",
        b'["not", "an", "object"]',
        b'{"issuer": "ISSUER"}',
        b'{"issuer": "ISSUER", "jwks_uri": 42}',
        b'{"issuer": "ISSUER", "jwks_uri": "http://192.0.2.10/jwks"}',
        b'{"issuer": "ISSUER", "jwks_uri": "ftp://127.0.0.1/jwks"}',
    ],
    ids=["not-json", "not-an-object", "no-jwks-uri", "jwks-uri-not-text", "http-jwks", "ftp"],
)
async def test_an_unusable_discovery_document_makes_the_issuer_unavailable(
    documents: Documents, cache: JwksCache, clock: FakeClock, discovery: bytes
) -> None:
    documents.bodies["/.well-known/openid-configuration"] = discovery.replace(
        b"ISSUER", documents.url.encode()
    )
    assert await reason(cache, token(documents.url, clock)) == "issuer_unavailable"
    with pytest.raises(TokenError) as caught:
        await cache.metadata()
    assert caught.value.reason == "issuer_unavailable"
    assert documents.requests["/jwks"] == 0


async def test_discovery_is_fetched_once_and_counted(
    documents: Documents, cache: JwksCache
) -> None:
    first = await cache.metadata()
    assert first["jwks_uri"] == documents.url + "/jwks"
    assert await cache.metadata() == first
    assert cache.metadata_fetch_count == 1
    assert documents.requests["/.well-known/openid-configuration"] == 1


async def test_a_cache_without_an_issuer_has_no_discovery_and_cannot_pick_an_issuer(
    documents: Documents, clock: FakeClock, caches: list[JwksCache]
) -> None:
    cache = JwksCache(jwks_url=documents.url + "/jwks", clock=clock)
    caches.append(cache)
    with pytest.raises(TokenError) as caught:
        await cache.metadata()
    assert caught.value.reason == "issuer_unavailable"
    with pytest.raises(ConfigError, match="expected issuer"):
        await cache.verify(token(documents.url, clock), audience=AUD)
    claims = await cache.verify(token(documents.url, clock), audience=AUD, issuer=documents.url)
    assert claims["sub"] == "user-1"


# -- key sets ----------------------------------------------------------------------------------


def _without(key: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in key.items() if k != name}


UNUSABLE_KEYS: dict[str, Any] = {
    "not-an-object": "key",
    "encryption-key": {**PUBLIC_JWK, "use": "enc"},
    "numeric-kid": {**PUBLIC_JWK, "kid": 7},
    "other-algorithm": {**PUBLIC_JWK, "alg": "RS512"},
    "other-type": {**_without(PUBLIC_JWK, "n"), "kty": "oct", "k": "c2VjcmV0"},
    "bad-modulus": {**PUBLIC_JWK, "n": "!!!"},
    "private-key": {
        **RSAAlgorithm.to_jwk(KEY, as_dict=True),
        "kid": KID,
        "use": "sig",
    },
}


@pytest.mark.parametrize(
    "key_set",
    [
        {"no": "keys"},
        {"keys": "not a list"},
        {"keys": []},
        *({"keys": [key]} for key in UNUSABLE_KEYS.values()),
    ],
    ids=["no-keys", "keys-not-a-list", "empty", *UNUSABLE_KEYS],
)
async def test_a_key_set_without_a_usable_signing_key_makes_the_issuer_unavailable(
    documents: Documents, cache: JwksCache, clock: FakeClock, key_set: dict[str, Any]
) -> None:
    documents.put("/jwks", key_set)
    assert await reason(cache, token(documents.url, clock)) == "issuer_unavailable"


async def test_unusable_keys_are_skipped_and_the_usable_one_verifies(
    documents: Documents, cache: JwksCache, clock: FakeClock
) -> None:
    documents.put("/jwks", {"keys": [*UNUSABLE_KEYS.values(), PUBLIC_JWK]})
    assert (await cache.verify(token(documents.url, clock), audience=AUD))["sub"] == "user-1"


async def test_a_private_key_published_by_mistake_is_not_trusted_even_beside_a_public_one(
    documents: Documents, cache: JwksCache, clock: FakeClock
) -> None:
    private = UNUSABLE_KEYS["private-key"]
    documents.put("/jwks", {"keys": [{**private, "kid": "leaked"}, PUBLIC_JWK]})
    assert await reason(cache, token(documents.url, clock, kid="leaked")) == "unknown_key"


@pytest.mark.parametrize("cache_control", ["max-age=soon", 'max-age="x"', "max-age=1e99"])
async def test_an_unreadable_max_age_keeps_the_default_lifetime(
    documents: Documents, cache: JwksCache, clock: FakeClock, cache_control: str
) -> None:
    documents.cache_control = cache_control
    await cache.verify(token(documents.url, clock), audience=AUD)
    clock.advance(timedelta(minutes=10) - timedelta(milliseconds=1))
    await cache.verify(token(documents.url, clock), audience=AUD)
    assert documents.requests["/jwks"] == 1
    clock.advance(timedelta(milliseconds=1))
    await cache.verify(token(documents.url, clock), audience=AUD)
    assert documents.requests["/jwks"] == 2


async def test_fetches_go_through_a_client_the_caller_owns(
    documents: Documents, clock: FakeClock, caches: list[JwksCache]
) -> None:
    async with httpx.AsyncClient(headers={"user-agent": "my-app"}) as client:
        cache = JwksCache(issuer=documents.url, client=client, clock=clock)
        caches.append(cache)
        assert (await cache.verify(token(documents.url, clock), audience=AUD))["sub"] == "user-1"
        assert not client.is_closed
    assert documents.requests["/jwks"] == 1


async def test_without_a_clock_the_cache_uses_the_real_time(
    documents: Documents, caches: list[JwksCache]
) -> None:
    cache = JwksCache(issuer=documents.url)
    caches.append(cache)

    def now() -> datetime:
        return datetime.now(timezone.utc)

    assert (await cache.verify(token(documents.url, now), audience=AUD))["sub"] == "user-1"
    expired = token(documents.url, now, exp=int(now().timestamp()) - 3600)
    assert await reason(cache, expired) == "expired"


# -- tokens refused before or after the key lookup --------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _header(**fields: Any) -> str:
    return _b64(json.dumps({"alg": "RS256", "typ": "JWT", **fields}).encode())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("only.two", "malformed"),
        ("a.b.c.d", "malformed"),
        ("ünïcode.a.b", "malformed"),
        ("x" * 20000 + ".a.b", "malformed"),
        ("%%%.payload.signature", "malformed"),
        (_header(kid=7) + ".e30.c2ln", "malformed"),
        (_header(alg="HS256") + ".e30.c2ln", "invalid_algorithm"),
    ],
    ids=["two-parts", "four-parts", "not-ascii", "too-long", "bad-header", "kid-number", "hs256"],
)
async def test_malformed_tokens_are_refused_without_fetching_keys(
    documents: Documents, cache: JwksCache, text: str, expected: str
) -> None:
    assert await reason(cache, text) == expected
    assert sum(documents.requests.values()) == 0


async def test_a_token_whose_payload_cannot_be_decoded_is_malformed(
    documents: Documents, cache: JwksCache
) -> None:
    # One base64 character is never a valid encoding: the payload cannot be decoded.
    assert await reason(cache, _header(kid=KID) + ".a.c2ln") == "malformed"


@pytest.mark.parametrize(
    "payload", [b"[1, 2]", b'"a string"', b"not json"], ids=["array", "string", "not-json"]
)
async def test_a_genuinely_signed_token_whose_payload_is_no_json_object_is_malformed(
    documents: Documents, cache: JwksCache, payload: bytes
) -> None:
    signed = jwt.api_jws.encode(payload, KEY, algorithm="RS256", headers={"kid": KID})
    assert await reason(cache, signed) == "malformed"
    assert documents.requests["/jwks"] == 1  # checked after the signature, with the issuer's key


async def test_keys_for_refuses_an_algorithm_outside_the_allow_list(
    documents: Documents, cache: JwksCache
) -> None:
    with pytest.raises(TokenError) as caught:
        await cache.keys_for("HS256", None)
    assert caught.value.reason == "invalid_algorithm"
    assert [k.key_id for k in await cache.keys_for("RS256", KID)] == [KID]


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_an_implausible_timestamp_is_an_invalid_claim(
    documents: Documents, cache: JwksCache, clock: FakeClock, claim: str
) -> None:
    assert await reason(cache, token(documents.url, clock, **{claim: 10**13})) == "invalid_claims"


# -- configuration -----------------------------------------------------------------------------


def test_a_cache_needs_an_issuer_or_a_key_set_url() -> None:
    with pytest.raises(ConfigError, match="needs an issuer"):
        JwksCache()


def test_lifetimes_must_be_ordered() -> None:
    with pytest.raises(ConfigError, match="min_ttl <= default_ttl <= max_ttl"):
        JwksCache(
            jwks_url="https://issuer.example/jwks",
            min_ttl=timedelta(hours=2),
            default_ttl=timedelta(hours=1),
        )


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://issuer.example/jwks", True),
        ("http://localhost:8080/jwks", True),
        ("http://127.0.0.1:8080/jwks", True),
        ("http://[::1]:8080/jwks", True),
        ("http://192.0.2.10/jwks", False),
        ("http://issuer.example/jwks", False),
        ("https:///jwks", False),
    ],
)
def test_keys_are_fetched_over_https_or_from_a_loopback_host(url: str, allowed: bool) -> None:
    if allowed:
        assert check_fetch_url(url, "jwks_url") == url
    else:
        with pytest.raises(ConfigError, match="jwks_url must be an https URL"):
            check_fetch_url(url, "jwks_url")
