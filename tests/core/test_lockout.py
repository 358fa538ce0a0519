"""Sign-up limits per client, IPv6 clients keyed by /64, and known devices: failures elsewhere
cannot lock an owner out of the browser they signed in with before (issue 11 items 6 and 11)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from authbridge import (
    Auth,
    AuthMiddleware,
    InvalidCredentials,
    RateLimitConfig,
    TooManyAttempts,
)
from tests.toolkit.engines import AuthFactory

ORIGIN = "https://testserver"
PASSWORD = "correct horse battery"
WRONG = "wrong horse battery"
DEVICE = "__Host-authbridge.device"


# -- sign-ups per client ---------------------------------------------------------------------------


async def test_sign_ups_from_one_ip_are_limited_even_when_they_succeed(
    auth_factory: AuthFactory,
) -> None:
    auth = await auth_factory(rate_limit=RateLimitConfig(sign_up_attempts=3))
    for i in range(3):
        await auth.sign_up_with_password(f"user{i}@example.com", PASSWORD, ip="203.0.113.1")
    with pytest.raises(TooManyAttempts) as caught:
        await auth.sign_up_with_password("user3@example.com", PASSWORD, ip="203.0.113.1")
    assert caught.value.retry_after == pytest.approx(1200)  # one sign-up back every 20 minutes
    # Sign-ins are not sign-ups; another client is unaffected.
    await auth.sign_in_with_password("user0@example.com", PASSWORD, ip="203.0.113.1")
    await auth.sign_up_with_password("user3@example.com", PASSWORD, ip="198.51.100.1")


async def test_the_default_is_twenty_sign_ups_per_ip_per_hour(auth: Auth) -> None:
    assert auth.config.rate_limit.sign_up_attempts == 20
    for i in range(20):
        await auth.sign_up_with_password(f"user{i}@example.com", PASSWORD, ip="203.0.113.2")
    with pytest.raises(TooManyAttempts):
        await auth.sign_up_with_password("user20@example.com", PASSWORD, ip="203.0.113.2")


async def test_ipv6_clients_share_buckets_by_64(auth_factory: AuthFactory) -> None:
    auth = await auth_factory(rate_limit=RateLimitConfig(sign_up_attempts=2, ip_attempts=3))
    await auth.sign_up_with_password("a@example.com", PASSWORD, ip="2001:db8::1")
    await auth.sign_up_with_password("b@example.com", PASSWORD, ip="2001:db8::ffff:2")
    with pytest.raises(TooManyAttempts):
        await auth.sign_up_with_password("c@example.com", PASSWORD, ip="2001:db8:0:0:1::3")
    await auth.sign_up_with_password("c@example.com", PASSWORD, ip="2001:db8:0:1::1")
    for address in ("2001:db8::10", "2001:db8::20", "2001:db8::30"):
        with pytest.raises(InvalidCredentials):
            await auth.sign_in_with_password(f"{address[-2:]}@example.com", WRONG, ip=address)
    with pytest.raises(TooManyAttempts):
        await auth.sign_in_with_password("z@example.com", WRONG, ip="2001:db8::40")


async def test_an_ipv4_mapped_address_counts_as_the_ipv4_client(auth_factory: AuthFactory) -> None:
    auth = await auth_factory(rate_limit=RateLimitConfig(sign_up_attempts=1))
    await auth.sign_up_with_password("a@example.com", PASSWORD, ip="192.0.2.7")
    with pytest.raises(TooManyAttempts):
        await auth.sign_up_with_password("b@example.com", PASSWORD, ip="::ffff:192.0.2.7")


# -- known devices -------------------------------------------------------------------------------


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def browser(auth: Auth, ip: str) -> httpx.AsyncClient:
    """A browser at ``ip`` (its own cookie jar)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=AuthMiddleware(_app, auth), client=(ip, 50000)),
        base_url=ORIGIN,
        headers={"origin": ORIGIN},
    )


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signIn", "email": email, "password": password},
        },
    )


@pytest.fixture
async def owner_auth(auth_factory: AuthFactory) -> Auth:
    auth = await auth_factory(site_url=ORIGIN)
    await auth.sign_up_with_password("ada@example.com", PASSWORD)
    await auth.sign_up_with_password("mallory@example.com", PASSWORD)
    return auth


async def test_a_browser_that_signed_in_before_is_not_locked_out_by_failures_elsewhere(
    owner_auth: Auth,
) -> None:
    async with (
        browser(owner_auth, "198.51.100.1") as owner,
        browser(owner_auth, "203.0.113.66") as attacker,
        browser(owner_auth, "192.0.2.3") as new_browser,
    ):
        assert (await sign_in(owner, "ada@example.com", PASSWORD)).status_code == 200
        for _ in range(10):
            assert (await sign_in(attacker, "ada@example.com", WRONG)).status_code == 401
        locked = await sign_in(attacker, "ada@example.com", PASSWORD)
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        # A browser that never signed in to ada shares the locked bucket ...
        assert (await sign_in(new_browser, "ada@example.com", PASSWORD)).status_code == 429
        # ... the owner's browser has its own.
        again = await sign_in(owner, "ada@example.com", PASSWORD)
        assert again.status_code == 200, again.text


async def test_a_known_browser_is_still_limited_on_its_own_failures(owner_auth: Auth) -> None:
    async with browser(owner_auth, "198.51.100.1") as owner:
        assert (await sign_in(owner, "ada@example.com", PASSWORD)).status_code == 200
        for _ in range(10):
            assert (await sign_in(owner, "ada@example.com", WRONG)).status_code == 401
        assert (await sign_in(owner, "ada@example.com", PASSWORD)).status_code == 429


async def test_a_device_cookie_for_another_account_gives_no_bucket_of_its_own(
    owner_auth: Auth,
) -> None:
    async with browser(owner_auth, "203.0.113.66") as attacker:
        assert (await sign_in(attacker, "mallory@example.com", PASSWORD)).status_code == 200
        assert attacker.cookies.get(DEVICE)
        for _ in range(10):
            assert (await sign_in(attacker, "ada@example.com", WRONG)).status_code == 401
        assert (await sign_in(attacker, "ada@example.com", WRONG)).status_code == 429
    async with browser(owner_auth, "198.51.100.1") as stranger:
        # Ada has no known browser yet: everyone shares her locked bucket.
        assert (await sign_in(stranger, "ada@example.com", PASSWORD)).status_code == 429


async def test_a_forged_device_cookie_is_ignored(owner_auth: Auth) -> None:
    async with browser(owner_auth, "198.51.100.1") as owner:
        assert (await sign_in(owner, "ada@example.com", PASSWORD)).status_code == 200
        genuine = owner.cookies[DEVICE]
        payload, signature = genuine.split(".")
    async with browser(owner_auth, "203.0.113.66") as attacker:
        for _ in range(10):
            await sign_in(attacker, "ada@example.com", WRONG)
        attacker.cookies.set(DEVICE, payload + "." + signature[::-1], domain="testserver")
        assert (await sign_in(attacker, "ada@example.com", PASSWORD)).status_code == 429


async def test_the_device_cookie_is_host_only_http_only_and_long_lived(owner_auth: Auth) -> None:
    async with browser(owner_auth, "198.51.100.1") as owner:
        response = await sign_in(owner, "ada@example.com", PASSWORD)
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(DEVICE)]
    assert "HttpOnly" in header and "Secure" in header and "Path=/" in header
    assert "Domain" not in header
    assert "Max-Age=34560000" in header
    assert "ada@example.com" not in header  # the value is encoded, but says nothing else


async def test_a_failed_sign_in_sets_no_device_cookie(owner_auth: Auth) -> None:
    async with browser(owner_auth, "198.51.100.1") as client:
        response = await sign_in(client, "ada@example.com", WRONG)
    assert not any(h.startswith(DEVICE) for h in response.headers.get_list("set-cookie"))
