"""Passkey ceremonies over HTTP with the toolkit's software authenticator
(``tests.toolkit.passkeys``), so every check the server makes can be met or broken on purpose.
Chromium's virtual authenticator runs the same ceremonies end to end in
tests/e2e/test_passkeys.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from webauthn.helpers import bytes_to_base64url

from authbridge import Auth, AuthMiddleware
from authbridge.providers import PasswordProvider
from authbridge.providers.passkeys import PasskeyProvider
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.engines import AuthFactory
from tests.toolkit.passkeys import AT, ORIGIN, UP, Authenticator

from .conftest import JSON_CT, starlette_app


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """Ceremonies do not depend on the backend (the store's passkey queries run on both in
    tests/core/test_factor_store.py): SQLite only."""
    return f"sqlite+aiosqlite:///{tmp_path}/auth.db"


@dataclass
class Browser:
    client: httpx.AsyncClient

    async def options(self, ceremony: str) -> dict[str, Any]:
        response = await self.client.post(f"/api/auth/passkeys/{ceremony}/options", headers=JSON_CT)
        assert response.status_code == 200, response.text
        public_key: dict[str, Any] = response.json()["publicKey"]
        return public_key

    async def register(self, credential: Any, name: Any = "Laptop") -> httpx.Response:
        body: dict[str, Any] = {"credential": credential}
        if name is not None:
            body["name"] = name
        return await self.client.post("/api/auth/passkeys/register", json=body)

    async def sign_in(self, credential: Any) -> httpx.Response:
        return await self.client.post(
            "/api/auth/signin", json={"provider": "passkey", "params": {"credential": credential}}
        )

    async def whoami(self) -> dict[str, Any]:
        data: dict[str, Any] = (await self.client.get("/whoami")).json()
        return data


@pytest.fixture
async def passkey_auth(auth_factory: AuthFactory) -> Auth:
    return await auth_factory(passkeys=True, site_url=ORIGIN)


@pytest.fixture
def browser_factory(passkey_auth: Auth, client_factory: ClientFactory) -> Any:
    def make(auth: Auth = passkey_auth) -> Browser:
        return Browser(client_factory(AuthMiddleware(starlette_app(), auth)))

    return make


async def registered(browser: Browser, email: str = "ada@example.com") -> tuple[str, Authenticator]:
    """Sign up and register a passkey; returns the user id and the authenticator."""
    user_id = str((await sign_up(browser.client, email))["userId"])
    authenticator = Authenticator()
    response = await browser.register(authenticator.create(await browser.options("register")))
    assert response.status_code == 200, response.text
    return user_id, authenticator


async def test_a_registered_passkey_signs_in_and_its_counter_must_grow(
    browser_factory: Any,
) -> None:
    owner = browser_factory()
    user_id, authenticator = await registered(owner)
    listed = (await owner.client.get("/api/auth/passkeys")).json()["passkeys"]
    assert [p["name"] for p in listed] == ["Laptop"] and listed[0]["lastUsedAt"] is None

    elsewhere = browser_factory()
    answer = await elsewhere.sign_in(authenticator.get(await elsewhere.options("signin")))
    assert answer.status_code == 200, answer.text
    assert (await elsewhere.whoami())["userId"] == user_id
    used = (await owner.client.get("/api/auth/passkeys")).json()["passkeys"]
    assert used[0]["lastUsedAt"] is not None

    # A clone of the authenticator presents the same counter again: refused.
    cloned = browser_factory()
    replay = authenticator.get(await cloned.options("signin"), count_up=False)
    refused = await cloned.sign_in(replay)
    assert refused.status_code == 401 and refused.json() == {"error": "InvalidCredentials"}
    assert (await cloned.whoami())["userId"] is None


async def test_registering_the_same_credential_twice_is_refused(browser_factory: Any) -> None:
    browser = browser_factory()
    _, authenticator = await registered(browser)
    again = await browser.register(authenticator.create(await browser.options("register")))
    assert again.status_code == 400 and again.json() == {"error": "PasskeyExists"}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"origin": "https://evil.example"}, "another origin"),
        ({"flags": UP | AT}, "no user verification"),
    ],
)
async def test_a_registration_that_does_not_verify_is_refused(
    browser_factory: Any, change: dict[str, Any], why: str
) -> None:
    browser = browser_factory()
    await sign_up(browser.client)
    credential = Authenticator().create(await browser.options("register"), **change)
    response = await browser.register(credential)
    assert response.status_code == 400 and response.json() == {"error": "InvalidPasskey"}, why
    assert (await browser.client.get("/api/auth/passkeys")).json()["passkeys"] == []


async def test_a_registration_needs_the_challenge_this_browser_was_given(
    browser_factory: Any,
) -> None:
    browser = browser_factory()
    await sign_up(browser.client)
    options = await browser.options("register")
    browser.client.cookies.clear()
    await sign_up(browser.client, "bo@example.com")  # signed in again, without the challenge
    credential = Authenticator().create(options)
    response = await browser.register(credential)
    assert response.status_code == 400 and response.json() == {"error": "InvalidPasskey"}
    # The challenge is used up by the first attempt, even a failed one.
    response = await browser.register(credential)
    assert response.status_code == 400 and response.json() == {"error": "InvalidPasskey"}


@pytest.mark.parametrize(
    "body",
    [
        {"credential": "not an object"},
        {"credential": {}, "name": 42},
        {"name": "Laptop"},
    ],
)
async def test_a_registration_body_of_the_wrong_shape_is_invalid_params(
    browser_factory: Any, body: dict[str, Any]
) -> None:
    browser = browser_factory()
    await sign_up(browser.client)
    response = await browser.client.post("/api/auth/passkeys/register", json=body)
    assert response.status_code == 400 and response.json()["error"] == "InvalidParams"


@pytest.mark.parametrize(
    "break_it",
    [
        "tampered signature",
        "another user's handle",
        "handle not UTF-8",
        "handle not text",
        "no challenge",
    ],
)
async def test_an_assertion_that_fails_any_check_is_refused_alike(
    browser_factory: Any, break_it: str
) -> None:
    _, authenticator = await registered(browser_factory())
    browser = browser_factory()
    options = await browser.options("signin")
    if break_it == "tampered signature":
        credential = authenticator.get(options, tamper=True)
    elif break_it == "another user's handle":
        other_id, _ = await registered(browser_factory(), "mallory@example.com")
        credential = authenticator.get(options, user_handle=bytes_to_base64url(other_id.encode()))
    elif break_it == "handle not UTF-8":
        credential = authenticator.get(options, user_handle=bytes_to_base64url(b"\xff\xfe\xfd"))
    elif break_it == "handle not text":
        credential = authenticator.get(options, user_handle=12345)
    else:
        browser.client.cookies.clear()
        credential = authenticator.get(options)
    response = await browser.sign_in(credential)
    assert response.status_code == 401 and response.json() == {"error": "InvalidCredentials"}
    assert (await browser.whoami())["userId"] is None


async def test_an_oversized_credential_id_is_not_looked_up(browser_factory: Any) -> None:
    _, authenticator = await registered(browser_factory())
    browser = browser_factory()
    credential = authenticator.get(await browser.options("signin"))
    credential["rawId"] = credential["id"] = "A" * 1401
    response = await browser.sign_in(credential)
    assert response.status_code == 401 and response.json() == {"error": "InvalidCredentials"}


async def test_without_required_user_verification_a_presence_only_assertion_signs_in(
    auth_factory: AuthFactory, client_factory: ClientFactory
) -> None:
    provider = PasskeyProvider(user_verification=False, rp_name="Example Notes")
    auth = await auth_factory({"providers": [PasswordProvider(), provider]}, site_url=ORIGIN)
    browser = Browser(client_factory(AuthMiddleware(starlette_app(), auth)))
    await sign_up(browser.client)
    options = await browser.options("register")
    assert options["rp"]["name"] == "Example Notes"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    authenticator = Authenticator()
    assert (await browser.register(authenticator.create(options, flags=UP | AT))).status_code == 200
    other = Browser(client_factory(AuthMiddleware(starlette_app(), auth)))
    sign_in_options = await other.options("signin")
    assert sign_in_options["userVerification"] == "preferred"
    answer = await other.sign_in(authenticator.get(sign_in_options, flags=UP))
    assert answer.status_code == 200, answer.text


async def test_removing_needs_an_id_and_removes_only_that_passkey(browser_factory: Any) -> None:
    browser = browser_factory()
    _, authenticator = await registered(browser)
    missing = await browser.client.post("/api/auth/passkeys/remove", json={})
    assert missing.status_code == 400 and missing.json()["error"] == "InvalidParams"
    [passkey] = (await browser.client.get("/api/auth/passkeys")).json()["passkeys"]
    removed = await browser.client.post("/api/auth/passkeys/remove", json={"id": passkey["id"]})
    assert removed.status_code == 200 and removed.json() == {"removed": True}
    assert (await browser.client.get("/api/auth/passkeys")).json()["passkeys"] == []
    other = browser_factory()
    answer = await other.sign_in(authenticator.get(await other.options("signin")))
    assert answer.status_code == 401
