"""The async JWKS cache against a real issuer on 127.0.0.1: discovery, freshness, one fetch in
flight, unknown kids with a cooldown, keys without kid, stale keys while the issuer is down,
bounded timeouts and the algorithm allow-list. Time moves through the injected clock."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from authbridge.errors import ConfigError, TokenError
from authbridge.jwks import JwksCache
from tests.toolkit.clock import FakeClock
from tests.toolkit.servers import refused_url

from .issuer import TestIssuer, running_issuer

AUD = "my-client"


@pytest.fixture
async def issuer() -> AsyncIterator[TestIssuer]:
    async with running_issuer() as running:
        yield running


@pytest.fixture
async def caches(clock: FakeClock) -> AsyncIterator[list[JwksCache]]:
    made: list[JwksCache] = []
    yield made
    for cache in made:
        await cache.aclose()


def claims_now(clock: FakeClock, **more: Any) -> dict[str, Any]:
    now = int(clock().timestamp())
    return {"sub": "user-1", "aud": AUD, "iat": now, "exp": now + 300, **more}


@pytest.fixture
def cache_factory(clock: FakeClock, caches: list[JwksCache]) -> Any:
    def factory(**options: Any) -> JwksCache:
        options.setdefault("clock", clock)
        cache = JwksCache(**options)
        caches.append(cache)
        return cache

    return factory


async def test_a_token_verifies_with_a_key_found_through_discovery(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    cache = cache_factory(issuer=issuer.url)
    claims = await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert claims["sub"] == "user-1"
    assert issuer.requests["/.well-known/openid-configuration"] == 1
    assert issuer.requests["/jwks"] == 1
    assert (await cache.metadata())["jwks_uri"] == issuer.jwks_url


async def test_an_explicit_jwks_url_needs_no_discovery(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    cache = cache_factory(issuer=issuer.url, jwks_url=issuer.jwks_url)
    await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert issuer.requests["/.well-known/openid-configuration"] == 0
    assert issuer.requests["/jwks"] == 1


async def test_fifty_concurrent_first_verifications_share_one_fetch(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    cache = cache_factory(issuer=issuer.url)
    token = issuer.mint(claims_now(clock))
    results = await asyncio.gather(*(cache.verify(token, audience=AUD) for _ in range(50)))
    assert all(r["sub"] == "user-1" for r in results)
    assert issuer.requests["/jwks"] == 1
    assert issuer.requests["/.well-known/openid-configuration"] == 1
    assert cache.fetch_count == 1


async def test_keys_are_kept_for_max_age_and_fetched_again_after_it(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    issuer.cache_control = "public, max-age=300"
    cache = cache_factory(jwks_url=issuer.jwks_url, issuer=issuer.url)
    await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    clock.advance(299.999)
    await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert issuer.requests["/jwks"] == 1
    clock.advance(0.001)
    await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert issuer.requests["/jwks"] == 2


@pytest.mark.parametrize(
    ("cache_control", "kept_s"),
    [
        ("max-age=0", 60),  # raised to the floor
        ("no-store", 60),
        (None, 600),  # the default without a header
        ("public, max-age=999999999", 86400),  # the ceiling
        ("max-age=120, must-revalidate", 120),
    ],
)
async def test_max_age_is_clamped_between_the_floor_and_the_ceiling(
    issuer: TestIssuer,
    cache_factory: Any,
    clock: FakeClock,
    cache_control: str | None,
    kept_s: int,
) -> None:
    issuer.cache_control = cache_control
    cache = cache_factory(jwks_url=issuer.jwks_url, issuer=issuer.url)
    await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    clock.advance(kept_s - 0.001)
    await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert issuer.requests["/jwks"] == 1
    clock.advance(0.001)
    await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert issuer.requests["/jwks"] == 2


async def test_an_unknown_kid_refetches_once_and_finds_a_rotated_key(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    cache = cache_factory(jwks_url=issuer.jwks_url, issuer=issuer.url)
    await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    clock.advance(31)  # past the cooldown, well inside max-age
    new = issuer.add_key("ES256")
    claims = await cache.verify(issuer.mint(claims_now(clock), key=new), audience=AUD)
    assert claims["sub"] == "user-1"
    assert issuer.requests["/jwks"] == 2


async def test_forged_kids_cause_at_most_one_refetch_per_cooldown(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    cache = cache_factory(
        jwks_url=issuer.jwks_url, issuer=issuer.url, refetch_cooldown=timedelta(seconds=30)
    )
    await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    clock.advance(30)
    forged = [issuer.mint(claims_now(clock), headers={"kid": f"forged-{i}"}) for i in range(20)]
    outcomes = await asyncio.gather(
        *(cache.verify(t, audience=AUD) for t in forged), return_exceptions=True
    )
    assert all(isinstance(o, TokenError) and o.reason == "unknown_key" for o in outcomes)
    assert issuer.requests["/jwks"] == 2
    clock.advance(29.999)
    with pytest.raises(TokenError) as caught:
        await cache.verify(forged[0], audience=AUD)
    assert caught.value.reason == "unknown_key"
    assert issuer.requests["/jwks"] == 2
    clock.advance(0.001)
    with pytest.raises(TokenError):
        await cache.verify(forged[1], audience=AUD)
    assert issuer.requests["/jwks"] == 3


async def test_keys_without_kid_are_tried_by_key_type(clock: FakeClock, cache_factory: Any) -> None:
    async with running_issuer() as issuer:
        issuer.keys.clear()
        first = issuer.add_key("RS256", kid=None)
        second = issuer.add_key("RS256", kid=None)
        ec_key = issuer.add_key("ES256", kid=None)
        cache = cache_factory(jwks_url=issuer.jwks_url, issuer=issuer.url)
        for key in (first, second, ec_key):
            claims = await cache.verify(issuer.mint(claims_now(clock), key=key), audience=AUD)
            assert claims["sub"] == "user-1"
        assert issuer.requests["/jwks"] == 1


async def test_a_key_rotated_at_an_issuer_without_kids_is_found_by_one_refetch(
    clock: FakeClock, cache_factory: Any
) -> None:
    from .issuer import new_key

    async with running_issuer() as issuer:
        issuer.keys.clear()
        old = issuer.add_key("RS256", kid=None)
        cache = cache_factory(jwks_url=issuer.jwks_url, refetch_cooldown=timedelta(seconds=30))
        await cache.verify(issuer.mint(claims_now(clock), key=old), audience=AUD, issuer=issuer.url)
        clock.advance(30)  # past the cooldown, well inside max-age
        issuer.keys[:] = [new_key("RS256", kid=None)]
        rotated = issuer.mint(claims_now(clock))
        claims = await cache.verify(rotated, audience=AUD, issuer=issuer.url)
        assert claims["sub"] == "user-1"
        assert issuer.requests["/jwks"] == 2
        # A forged signature costs at most one more fetch per cooldown.
        forged = rotated[:-4] + ("AAAA" if not rotated.endswith("AAAA") else "BBBB")
        for _ in range(5):
            with pytest.raises(TokenError) as caught:
                await cache.verify(forged, audience=AUD, issuer=issuer.url)
            assert caught.value.reason == "invalid_signature"
        assert issuer.requests["/jwks"] == 2


async def test_a_token_with_a_kid_matches_a_key_published_without_one(
    clock: FakeClock, cache_factory: Any
) -> None:
    async with running_issuer() as issuer:
        issuer.keys.clear()
        key = issuer.add_key("RS256", kid=None)
        cache = cache_factory(jwks_url=issuer.jwks_url, issuer=issuer.url)
        token = issuer.mint(claims_now(clock), key=key, headers={"kid": "some-kid"})
        assert (await cache.verify(token, audience=AUD))["sub"] == "user-1"


async def test_stale_keys_keep_serving_while_the_issuer_is_down(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    cache = cache_factory(jwks_url=issuer.jwks_url, issuer=issuer.url)
    await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    issuer.mode = "down"
    clock.advance(301)
    with caplog.at_level(logging.WARNING, logger="authbridge.jwks"):
        claims = await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert claims["sub"] == "user-1"
    assert "HTTP 503" in caplog.text and "serving the cached copy" in caplog.text
    assert issuer.requests["/jwks"] == 2
    # The failed fetch is retried after the cooldown, not on every request.
    clock.advance(29)
    await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert issuer.requests["/jwks"] == 2
    clock.advance(1)
    issuer.mode = "up"
    await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert issuer.requests["/jwks"] == 3


async def test_stale_keys_stop_serving_after_max_stale(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    cache = cache_factory(jwks_url=issuer.jwks_url, issuer=issuer.url, max_stale=timedelta(hours=1))
    await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    issuer.mode = "down"
    clock.advance(300 + 3600)
    with pytest.raises(TokenError) as caught:
        await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert caught.value.reason == "issuer_unavailable"


async def test_a_cold_cache_with_the_issuer_answering_errors_is_unavailable(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    issuer.mode = "down"
    cache = cache_factory(issuer=issuer.url)
    with pytest.raises(TokenError) as caught:
        await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert caught.value.reason == "issuer_unavailable"


async def test_a_cold_cache_with_nothing_listening_is_unavailable(
    cache_factory: Any, clock: FakeClock
) -> None:
    url = refused_url()
    cache = cache_factory(issuer=url, jwks_url=url + "/jwks")
    with pytest.raises(TokenError) as caught:
        await cache.keys_for("RS256", "k")
    assert caught.value.reason == "issuer_unavailable"


async def test_a_slow_issuer_is_given_up_on_within_the_timeout(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    issuer.mode = "slow"
    issuer.delay_s = 10
    cache = cache_factory(issuer=issuer.url, timeout=timedelta(seconds=0.3))
    started = time.monotonic()
    with pytest.raises(TokenError) as caught:
        await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert caught.value.reason == "issuer_unavailable"
    assert time.monotonic() - started < 2


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signing_input(alg: str, clock: FakeClock) -> bytes:
    header = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": "k"}).encode())
    return f"{header}.{b64(json.dumps(claims_now(clock)).encode())}".encode()


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", "ES384"])
async def test_a_refused_algorithm_is_rejected_before_any_key_lookup(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock, alg: str
) -> None:
    cache = cache_factory(issuer=issuer.url, algorithms=["RS256", "ES256"])
    if alg == "HS256":
        # HS/RS confusion: the issuer's public key used as an HMAC secret.
        public_pem = (
            issuer.keys[0]
            .private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        signature = hmac.new(public_pem, signing_input(alg, clock), hashlib.sha256).digest()
        token = signing_input(alg, clock).decode() + "." + b64(signature)
    else:
        token = signing_input(alg, clock).decode() + "." + b64(b"not a signature")
    with pytest.raises(TokenError) as caught:
        await cache.verify(token, audience=AUD)
    assert caught.value.reason == "invalid_algorithm"
    assert sum(issuer.requests.values()) == 0


@pytest.mark.parametrize("alg", ["HS256", "none", "RS1"])
def test_symmetric_or_unknown_algorithms_cannot_be_allowed(alg: str) -> None:
    with pytest.raises(ConfigError):
        JwksCache(jwks_url="https://issuer.example/jwks", algorithms=["RS256", alg])


@pytest.mark.parametrize(
    "url", ["http://issuer.example/jwks", "ftp://127.0.0.1/jwks", "file:///etc/passwd"]
)
def test_key_sources_must_be_https_except_on_loopback(url: str) -> None:
    with pytest.raises(ConfigError):
        JwksCache(jwks_url=url)


async def test_a_kid_naming_a_key_of_another_type_is_an_algorithm_error(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    cache = cache_factory(jwks_url=issuer.jwks_url, issuer=issuer.url)
    rsa_kid = issuer.keys[0].kid
    ec_key = issuer.add_key("ES256")
    token = issuer.mint(claims_now(clock), key=ec_key, headers={"kid": rsa_kid})
    with pytest.raises(TokenError) as caught:
        await cache.verify(token, audience=AUD)
    assert caught.value.reason == "invalid_algorithm"


async def test_a_tampered_token_fails_its_signature_check(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    cache = cache_factory(issuer=issuer.url)
    header, payload, signature = issuer.mint(claims_now(clock)).split(".")
    other = issuer.mint(claims_now(clock, sub="admin")).split(".")[1]
    with pytest.raises(TokenError) as caught:
        await cache.verify(".".join([header, other, signature]), audience=AUD)
    assert caught.value.reason == "invalid_signature"
    assert payload != other


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "someone-else"}, "invalid_audience"),
        ({"iss": "http://127.0.0.1:1"}, "invalid_issuer"),
        ({"exp_offset": -61}, "expired"),
        ({"iat_offset": 61}, "not_yet_valid"),
        ({"nbf_offset": 61}, "not_yet_valid"),
        ({"drop": "iat"}, "invalid_claims"),
        ({"drop": "exp"}, "invalid_claims"),
        ({"exp": "tomorrow"}, "invalid_claims"),
    ],
)
async def test_claims_are_checked_with_a_small_leeway(
    issuer: TestIssuer,
    cache_factory: Any,
    clock: FakeClock,
    changes: dict[str, Any],
    reason: str,
) -> None:
    cache = cache_factory(issuer=issuer.url)
    now = int(clock().timestamp())
    claims = claims_now(clock)
    if "exp_offset" in changes:
        claims["exp"] = now + changes["exp_offset"]
    elif "iat_offset" in changes:
        claims["iat"] = now + changes["iat_offset"]
    elif "nbf_offset" in changes:
        claims["nbf"] = now + changes["nbf_offset"]
    elif "drop" in changes:
        del claims[changes["drop"]]
    else:
        claims.update(changes)
    with pytest.raises(TokenError) as caught:
        await cache.verify(issuer.mint(claims), audience=AUD)
    assert caught.value.reason == reason


async def test_expiry_inside_the_leeway_is_accepted(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    cache = cache_factory(issuer=issuer.url)
    now = int(clock().timestamp())
    token = issuer.mint(claims_now(clock, exp=now - 59))
    assert (await cache.verify(token, audience=AUD))["sub"] == "user-1"


async def test_a_discovery_document_naming_another_issuer_is_refused(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    issuer.metadata_issuer = "https://attacker.example"
    cache = cache_factory(issuer=issuer.url)
    with pytest.raises(TokenError) as caught:
        await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert caught.value.reason == "issuer_unavailable"
    assert issuer.requests["/jwks"] == 0


async def test_an_oversized_key_set_is_refused(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    for _ in range(4):
        issuer.add_key("RS256")
    cache = cache_factory(jwks_url=issuer.jwks_url, issuer=issuer.url, max_bytes=1000)
    with pytest.raises(TokenError) as caught:
        await cache.verify(issuer.mint(claims_now(clock)), audience=AUD)
    assert caught.value.reason == "issuer_unavailable"


async def test_an_issuer_predicate_accepts_multi_tenant_issuers(
    issuer: TestIssuer, cache_factory: Any, clock: FakeClock
) -> None:
    cache = cache_factory(jwks_url=issuer.jwks_url)
    template = "https://login.example/{tid}/v2.0"
    token = issuer.mint(claims_now(clock, tid="t1"), iss="https://login.example/t1/v2.0")
    forged = issuer.mint(claims_now(clock, tid="t1"), iss="https://login.example/t2/v2.0")

    def same_tenant(claims: Any) -> bool:
        return bool(claims.get("iss") == template.format(tid=claims.get("tid")))

    assert (await cache.verify(token, audience=AUD, issuer=same_tenant))["tid"] == "t1"
    with pytest.raises(TokenError) as caught:
        await cache.verify(forged, audience=AUD, issuer=same_tenant)
    assert caught.value.reason == "invalid_issuer"
