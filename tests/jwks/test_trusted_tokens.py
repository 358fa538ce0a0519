"""``TrustedIssuers`` on tokens that are not quite right: a ``sub`` that names nobody, tokens
whose ``iss`` cannot be read (not ours to judge: ``None``), and the session id a plain issuer's
``sid`` gives. Against the real JWKS-serving test issuer on 127.0.0.1."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any, Protocol

import pytest

from authbridge.errors import TokenError
from authbridge.jwks import JwksCache
from authbridge.trusted import TrustedIssuer, TrustedIssuers

from .issuer import TestIssuer, running_issuer

AUD = "my-api"


class FakeClock(Protocol):
    """The shared ``clock`` fixture (``tests/conftest.py``)."""

    def __call__(self) -> datetime: ...

    def advance(self, delta: float | timedelta) -> None: ...


@pytest.fixture
async def issuer() -> AsyncIterator[TestIssuer]:
    async with running_issuer() as running:
        yield running


@pytest.fixture
async def trusted(issuer: TestIssuer, clock: FakeClock) -> AsyncIterator[TrustedIssuers]:
    issuers = TrustedIssuers(
        [TrustedIssuer(issuer.url, AUD, jwks_url=issuer.jwks_url)],
        own_issuer="https://app.example.com",
        clock=clock,
    )
    yield issuers
    await issuers.aclose()


def claims(clock: FakeClock, **more: Any) -> dict[str, Any]:
    now = int(clock().timestamp())
    return {"aud": AUD, "iat": now, "exp": now + 300, **more}


@pytest.mark.parametrize("sub", ["", 42, None])
async def test_a_token_whose_sub_names_nobody_is_invalid(
    issuer: TestIssuer, trusted: TrustedIssuers, clock: FakeClock, sub: Any
) -> None:
    token = issuer.mint(claims(clock, sub=sub) if sub is not None else claims(clock))
    with pytest.raises(TokenError) as caught:
        await trusted.verify(token)
    assert caught.value.reason == "invalid_claims"


async def test_a_plain_issuers_sid_is_the_session(
    issuer: TestIssuer, trusted: TrustedIssuers, clock: FakeClock
) -> None:
    with_sid = await trusted.verify(issuer.mint(claims(clock, sub="auth0|42", sid="s-1")))
    without = await trusted.verify(issuer.mint(claims(clock, sub="auth0|42", sid="")))
    assert with_sid is not None and without is not None
    assert (with_sid.user_id, with_sid.session_id) == ("auth0|42", "s-1")
    assert (without.user_id, without.session_id) == ("auth0|42", None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "a.%%%.c",
        "a." + _b64(b"not json") + ".c",
        "a." + _b64(b'["a", "list"]') + ".c",
        "a." + _b64(json.dumps({"iss": 42}).encode()) + ".c",
        "a." + "A" * 12001 + ".c",
        "only.two",
    ],
    ids=["not-base64", "not-json", "not-an-object", "numeric-iss", "oversized", "two-parts"],
)
async def test_a_token_whose_issuer_cannot_be_read_is_not_a_trusted_issuers(
    issuer: TestIssuer, trusted: TrustedIssuers, token: str
) -> None:
    assert await trusted.verify(token) is None
    assert sum(issuer.requests.values()) == 0


async def test_each_trusted_issuer_has_its_key_cache(
    issuer: TestIssuer, trusted: TrustedIssuers
) -> None:
    assert issuer.url in trusted and "https://other.example.com" not in trusted
    assert isinstance(trusted.cache_for(issuer.url), JwksCache)
    assert trusted.cache_for("https://other.example.com") is None
