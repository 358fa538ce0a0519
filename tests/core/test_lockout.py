"""Sign-up limits per client, IPv6 clients keyed by /64, and known devices: failures elsewhere
cannot lock an owner out of the browser they signed in with before (issue 11 items 6 and 11)."""

from __future__ import annotations

import base64
import json
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
from authbridge.tokens import generate_private_key_pem
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory, signing_key

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


def browser(auth: Auth, ip: str, cookies: httpx.Cookies | None = None) -> httpx.AsyncClient:
    """A browser at ``ip`` (its own cookie jar, or ``cookies``: the same browser on another
    instance of the app)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=AuthMiddleware(_app, auth), client=(ip, 50000)),
        base_url=ORIGIN,
        headers={"origin": ORIGIN},
        cookies=cookies,
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


async def lock_out(client: httpx.AsyncClient, email: str) -> None:
    """Spend ``email``'s shared bucket of failed attempts from ``client``."""
    for _ in range(10):
        assert (await sign_in(client, email, WRONG)).status_code == 401
    assert (await sign_in(client, email, WRONG)).status_code == 429


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def renamed(value: str, account: str) -> str:
    """A device cookie rewritten to name ``account``, its signature kept."""
    payload, signature = value.split(".")
    fields = json.loads(_unb64(payload))
    assert fields["a"] == "password:mallory@example.com"  # what the attacker starts from
    return _b64(json.dumps({**fields, "a": account}).encode()) + "." + signature


@pytest.mark.parametrize(
    ("cookie", "status"),
    [
        # The control: the genuine cookie works from any browser that holds it (so the
        # refusals below are the cookie's, not the jar's).
        (lambda ada, mallory: ada, 200),
        (lambda ada, mallory: ada.split(".")[0] + "." + ada.split(".")[1][::-1], 429),
        (lambda ada, mallory: renamed(mallory, "password:ada@example.com"), 429),
        (lambda ada, mallory: ada + "." + ada.split(".")[1], 429),
        (lambda ada, mallory: ada.split(".")[0], 429),
        (lambda ada, mallory: "", 429),
    ],
    ids=["genuine", "bad-signature", "renamed", "three-parts", "unsigned", "empty"],
)
async def test_only_a_genuine_device_cookie_gives_a_bucket_of_its_own(
    owner_auth: Auth, cookie: Any, status: int
) -> None:
    async with (
        browser(owner_auth, "198.51.100.1") as owner,
        browser(owner_auth, "203.0.113.66") as attacker,
    ):
        assert (await sign_in(owner, "ada@example.com", PASSWORD)).status_code == 200
        assert (await sign_in(attacker, "mallory@example.com", PASSWORD)).status_code == 200
        value = cookie(owner.cookies[DEVICE], attacker.cookies[DEVICE])
        await lock_out(attacker, "ada@example.com")
        # No domain: httpx sends it to testserver (a "testserver" domain would never be sent).
        attacker.cookies.delete(DEVICE)
        attacker.cookies.set(DEVICE, value)
        assert attacker.cookies[DEVICE] == value
        answer = await sign_in(attacker, "ada@example.com", PASSWORD)
        assert answer.status_code == status, answer.text


@pytest.mark.parametrize(
    "value",
    [b"\xe9.signature", b"payload.\xe9", b"x." + b"\xe9" * 1100],
    ids=["payload", "signature", "oversized"],
)
async def test_a_device_cookie_that_is_not_ascii_is_ignored(owner_auth: Auth, value: bytes) -> None:
    """Cookies are read as latin-1; such a value used to fail the sign-in with a 500."""
    async with browser(owner_auth, "198.51.100.1") as client:
        answer = await client.post(
            "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": "signIn", "email": "ada@example.com", "password": PASSWORD},
            },
            headers=[(b"cookie", DEVICE.encode() + b"=" + value)],
        )
        assert answer.status_code == 200, answer.text
        assert client.cookies.get(DEVICE)  # a new, genuine one


async def test_on_https_only_the_host_prefixed_device_cookie_is_read(owner_auth: Auth) -> None:
    """A sibling subdomain can plant a plain ``authbridge.device`` cookie, never a ``__Host-``
    one: on https the plain name is ignored, even with a genuine value."""
    async with (
        browser(owner_auth, "198.51.100.1") as owner,
        browser(owner_auth, "203.0.113.66") as attacker,
    ):
        assert (await sign_in(owner, "ada@example.com", PASSWORD)).status_code == 200
        genuine = owner.cookies[DEVICE]
        await lock_out(attacker, "ada@example.com")
        attacker.cookies.set("authbridge.device", genuine)
        assert (await sign_in(attacker, "ada@example.com", PASSWORD)).status_code == 429


async def test_a_browser_is_known_for_the_account_it_signed_in_to_last(owner_auth: Auth) -> None:
    async with (
        browser(owner_auth, "198.51.100.1") as shared,
        browser(owner_auth, "203.0.113.66") as attacker,
    ):
        assert (await sign_in(shared, "ada@example.com", PASSWORD)).status_code == 200
        assert (await sign_in(shared, "mallory@example.com", PASSWORD)).status_code == 200
        await lock_out(attacker, "ada@example.com")
        assert (await sign_in(shared, "ada@example.com", PASSWORD)).status_code == 429
        await lock_out(attacker, "mallory@example.com")
        assert (await sign_in(shared, "mallory@example.com", PASSWORD)).status_code == 200


async def test_a_key_rotation_that_keeps_the_old_key_keeps_known_devices(
    owner_auth: Auth, auth_factory: AuthFactory
) -> None:
    async with browser(owner_auth, "198.51.100.1") as owner:
        assert (await sign_in(owner, "ada@example.com", PASSWORD)).status_code == 200
        jar = owner.cookies
        before = jar[DEVICE]
    # The last key signs: the old one only verifies now.
    rotated = await auth_factory(
        site_url=ORIGIN, jwt_private_keys=(signing_key(), generate_private_key_pem("ES256"))
    )
    async with (
        browser(rotated, "198.51.100.1", jar) as owner,
        browser(rotated, "203.0.113.66") as attacker,
    ):
        await lock_out(attacker, "ada@example.com")
        assert (await sign_in(owner, "ada@example.com", PASSWORD)).status_code == 200
        assert owner.cookies[DEVICE] != before  # signed again, with the new key


async def test_a_key_rotation_that_drops_the_old_key_forgets_known_devices_until_a_sign_in(
    owner_auth: Auth, auth_factory: AuthFactory, clock: FakeClock
) -> None:
    async with browser(owner_auth, "198.51.100.1") as owner:
        assert (await sign_in(owner, "ada@example.com", PASSWORD)).status_code == 200
        jar = owner.cookies
    rotated = await auth_factory(
        site_url=ORIGIN, jwt_private_keys=(generate_private_key_pem("ES256"),)
    )
    async with (
        browser(rotated, "198.51.100.1", jar) as owner,
        browser(rotated, "203.0.113.66") as attacker,
    ):
        await lock_out(attacker, "ada@example.com")
        forgotten = await sign_in(owner, "ada@example.com", PASSWORD)
        assert forgotten.status_code == 429
        clock.advance(int(forgotten.headers["retry-after"]))
        # The next successful sign-in makes the browser known again, under the new key.
        assert (await sign_in(owner, "ada@example.com", PASSWORD)).status_code == 200
        await lock_out(attacker, "ada@example.com")
        assert (await sign_in(owner, "ada@example.com", PASSWORD)).status_code == 200
