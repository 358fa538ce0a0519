"""Second factors are auth events: confirming TOTP, replacing the recovery codes and registering a
passkey record ``factor_added``; disabling TOTP and removing a passkey record ``factor_removed``
with how many other sessions ended. Each is recorded once, from the session that made the change;
a refused change records nothing, and no event carries the TOTP secret, a code or a token."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pyotp
import pytest
from starlette.applications import Starlette

from authbridge import Auth, AuthMiddleware
from authbridge.events import AuthEvent
from tests.toolkit.clients import ClientFactory, bearer_token, sign_in, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import PASSWORD, AuthFactory
from tests.toolkit.passkeys import ORIGIN, Authenticator

Browsers = Callable[[], httpx.AsyncClient]
JSON = {"accept": "application/json", "content-type": "application/json"}
AGENT = "FactorEventsTest/1.0"
FACTOR_KINDS = ("factor_added", "factor_removed")


@pytest.fixture
def events() -> list[AuthEvent]:
    return []


@pytest.fixture
async def mfa_auth(auth_factory: AuthFactory, events: list[AuthEvent]) -> Auth:
    return await auth_factory(
        {"on_event": events.append}, totp=True, passkeys=True, site_url=ORIGIN
    )


@pytest.fixture
def browsers(mfa_auth: Auth, client_factory: ClientFactory) -> Browsers:
    """A new browser (its own cookie jar and User-Agent) on the same app."""
    app = AuthMiddleware(Starlette(), mfa_auth)
    return lambda: client_factory(app, headers={"user-agent": AGENT})


def factor_events(events: list[AuthEvent]) -> list[AuthEvent]:
    return [e for e in events if e.kind in FACTOR_KINDS]


def code_at(secret: str, clock: FakeClock, steps: int = 0) -> str:
    return pyotp.TOTP(secret).generate_otp(int(clock.now.timestamp()) // 30 + steps)


def wrong_code(secret: str, clock: FakeClock) -> str:
    """A code no accepted step (this one, the previous or the next) has."""
    accepted = {code_at(secret, clock, s) for s in (-1, 0, 1)}
    return next(c for c in (code_at(secret, clock, s) for s in range(5, 50)) if c not in accepted)


async def enroll(client: httpx.AsyncClient) -> str:
    answer = await client.post("/api/auth/totp/enroll", headers=JSON)
    assert answer.status_code == 200, answer.text
    secret: str = answer.json()["secret"]
    return secret


async def confirm(client: httpx.AsyncClient, code: str) -> httpx.Response:
    return await client.post("/api/auth/totp/confirm", json={"code": code})


async def enable_totp(client: httpx.AsyncClient, clock: FakeClock) -> tuple[str, list[str]]:
    """Enrol and confirm; returns the secret and the recovery codes."""
    secret = await enroll(client)
    confirmed = await confirm(client, code_at(secret, clock))
    assert confirmed.status_code == 200, confirmed.text
    codes: list[str] = confirmed.json()["recoveryCodes"]
    return secret, codes


async def passkey_options(client: httpx.AsyncClient, ceremony: str) -> dict[str, Any]:
    answer = await client.post(f"/api/auth/passkeys/{ceremony}/options", headers=JSON)
    assert answer.status_code == 200, answer.text
    options: dict[str, Any] = answer.json()["publicKey"]
    return options


async def register(
    client: httpx.AsyncClient, authenticator: Authenticator, **create: Any
) -> httpx.Response:
    credential = authenticator.create(await passkey_options(client, "register"), **create)
    return await client.post(
        "/api/auth/passkeys/register", json={"credential": credential, "name": "Work laptop"}
    )


async def add_passkey(client: httpx.AsyncClient) -> str:
    answer = await register(client, Authenticator())
    assert answer.status_code == 200, answer.text
    return str(answer.json()["passkey"]["id"])


async def signed_in_elsewhere(browsers: Browsers) -> str:
    answer = await sign_in(browsers())
    assert answer.json()["signedIn"] is True, answer.text
    return str(answer.json()["sessionId"])


def assert_from(event: AuthEvent, me: dict[str, Any]) -> None:
    """The event names the user and the session that made the change, and its client."""
    assert (event.user_id, event.session_id) == (me["userId"], me["sessionId"])
    assert (event.ip, event.user_agent) == ("127.0.0.1", AGENT)


async def test_confirming_totp_records_one_factor_added_and_enrolling_records_none(
    mfa_auth: Auth, browsers: Browsers, clock: FakeClock, events: list[AuthEvent]
) -> None:
    owner = browsers()
    me = await sign_up(owner)
    secret = await enroll(owner)
    assert factor_events(events) == []  # an enrolment is not a factor until confirmed

    confirmed = await confirm(owner, code_at(secret, clock))

    assert confirmed.status_code == 200, confirmed.text
    [added] = factor_events(events)
    assert (added.kind, added.provider, added.identifier, added.reason) == (
        "factor_added",
        "totp",
        None,
        None,
    )
    assert_from(added, me)


async def test_new_recovery_codes_record_factor_added_for_recovery_codes(
    mfa_auth: Auth, browsers: Browsers, clock: FakeClock, events: list[AuthEvent]
) -> None:
    owner = browsers()
    me = await sign_up(owner)
    await enable_totp(owner, clock)
    events.clear()

    renewed = await owner.post("/api/auth/totp/recovery-codes", headers=JSON)

    assert renewed.status_code == 200, renewed.text
    [added] = factor_events(events)
    assert (added.kind, added.provider, added.identifier, added.reason) == (
        "factor_added",
        "recovery_codes",
        None,
        None,
    )
    assert_from(added, me)


async def test_disabling_totp_records_factor_removed_with_the_other_sessions_ended(
    mfa_auth: Auth, browsers: Browsers, clock: FakeClock, events: list[AuthEvent]
) -> None:
    owner = browsers()
    me = await sign_up(owner)
    await signed_in_elsewhere(browsers)
    await signed_in_elsewhere(browsers)
    await enable_totp(owner, clock)
    events.clear()

    disabled = await owner.post("/api/auth/totp/disable", headers=JSON)

    assert disabled.status_code == 200, disabled.text
    [removed] = factor_events(events)
    assert (removed.kind, removed.provider, removed.identifier, removed.reason) == (
        "factor_removed",
        "totp",
        None,
        "2 other session(s) ended",
    )
    assert_from(removed, me)


async def test_disabling_an_enrolment_never_confirmed_records_nothing(
    mfa_auth: Auth, browsers: Browsers, events: list[AuthEvent]
) -> None:
    owner = browsers()
    await sign_up(owner)
    await enroll(owner)

    disabled = await owner.post("/api/auth/totp/disable", headers=JSON)

    assert disabled.status_code == 200, disabled.text
    assert factor_events(events) == []


async def test_a_passkey_records_factor_added_when_registered_and_removed_when_removed(
    mfa_auth: Auth, browsers: Browsers, events: list[AuthEvent]
) -> None:
    owner = browsers()
    me = await sign_up(owner)
    passkey_id = await add_passkey(owner)

    [added] = factor_events(events)
    assert (added.kind, added.provider, added.identifier, added.reason) == (
        "factor_added",
        "passkey",
        passkey_id,
        None,
    )
    assert_from(added, me)

    await signed_in_elsewhere(browsers)
    events.clear()
    removed_answer = await owner.post("/api/auth/passkeys/remove", json={"id": passkey_id})

    assert removed_answer.status_code == 200, removed_answer.text
    [removed] = factor_events(events)
    assert (removed.kind, removed.provider, removed.identifier, removed.reason) == (
        "factor_removed",
        "passkey",
        passkey_id,
        "1 other session(s) ended",
    )
    assert_from(removed, me)


Action = Callable[[], Awaitable[httpx.Response]]


async def refused_change(
    refusal: str, owner: httpx.AsyncClient, browsers: Browsers, clock: FakeClock
) -> Action:
    """Set the scene for ``refusal``; returns the request that is refused."""
    stale = refusal.endswith("no recent sign-in")
    target = refusal.split(", ")[0]
    secret = "A" * 32
    passkey_id = "nope"
    authenticator = Authenticator()
    if refusal in ("totp confirm, wrong code", "totp confirm, no recent sign-in"):
        secret = await enroll(owner)
    if refusal in (
        "totp confirm, already confirmed",
        "totp disable, no recent sign-in",
        "recovery codes, no recent sign-in",
    ):
        secret, _ = await enable_totp(owner, clock)
    if refusal == "passkey register, already registered":
        assert (await register(owner, authenticator)).status_code == 200
    if refusal == "passkey remove, no recent sign-in":
        passkey_id = await add_passkey(owner)
    if refusal == "passkey remove, someone else's":
        other = browsers()
        await sign_up(other, "someone@example.com")
        passkey_id = await add_passkey(other)
    if stale:
        clock.advance(11 * 60)  # past the providers' ten minutes
    if target == "totp confirm":
        code = (
            wrong_code(secret, clock) if refusal.endswith("wrong code") else code_at(secret, clock)
        )
        return lambda: confirm(owner, code)
    if target == "totp disable":
        return lambda: owner.post("/api/auth/totp/disable", headers=JSON)
    if target == "recovery codes":
        return lambda: owner.post("/api/auth/totp/recovery-codes", headers=JSON)
    if target == "passkey register":
        origin = "https://evil.example" if refusal.endswith("does not verify") else ORIGIN
        return lambda: register(owner, authenticator, origin=origin)
    return lambda: owner.post("/api/auth/passkeys/remove", json={"id": passkey_id})


@pytest.mark.parametrize(
    ("refusal", "status", "error"),
    [
        ("totp confirm, wrong code", 400, "InvalidCode"),
        ("totp confirm, no enrolment", 400, "TotpNotEnabled"),
        ("totp confirm, already confirmed", 400, "TotpNotEnabled"),
        ("totp confirm, no recent sign-in", 401, "RecentAuthRequired"),
        ("totp disable, not enabled", 400, "TotpNotEnabled"),
        ("totp disable, no recent sign-in", 401, "RecentAuthRequired"),
        ("recovery codes, not enabled", 400, "TotpNotEnabled"),
        ("recovery codes, no recent sign-in", 401, "RecentAuthRequired"),
        ("passkey register, does not verify", 400, "InvalidPasskey"),
        ("passkey register, already registered", 400, "PasskeyExists"),
        ("passkey remove, unknown id", 400, "PasskeyNotFound"),
        ("passkey remove, someone else's", 400, "PasskeyNotFound"),
        ("passkey remove, no recent sign-in", 401, "RecentAuthRequired"),
    ],
)
async def test_a_refused_change_records_no_event(
    mfa_auth: Auth,
    browsers: Browsers,
    clock: FakeClock,
    events: list[AuthEvent],
    refusal: str,
    status: int,
    error: str,
) -> None:
    owner = browsers()
    await sign_up(owner)
    change = await refused_change(refusal, owner, browsers, clock)
    events.clear()

    answer = await change()

    assert (answer.status_code, answer.json()) == (status, {"error": error})
    assert factor_events(events) == []


async def test_no_event_carries_the_totp_secret_a_code_or_a_token(
    mfa_auth: Auth,
    browsers: Browsers,
    clock: FakeClock,
    events: list[AuthEvent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="authbridge.events")
    owner = browsers()
    await sign_up(owner)
    await signed_in_elsewhere(browsers)
    secret = await enroll(owner)
    first_code = code_at(secret, clock)
    assert (await confirm(owner, first_code)).status_code == 200
    renewed = await owner.post("/api/auth/totp/recovery-codes", headers=JSON)
    recovery_codes: list[str] = renewed.json()["recoveryCodes"]
    passkey_id = await add_passkey(owner)
    token = await bearer_token(owner)
    cookies = [c.value for c in owner.cookies.jar if c.value]
    assert (await owner.post("/api/auth/passkeys/remove", json={"id": passkey_id})).is_success
    assert (await owner.post("/api/auth/totp/disable", headers=JSON)).is_success
    assert [(e.kind, e.provider) for e in factor_events(events)] == [
        ("factor_added", "totp"),
        ("factor_added", "recovery_codes"),
        ("factor_added", "passkey"),
        ("factor_removed", "passkey"),
        ("factor_removed", "totp"),
    ]

    secrets_seen = [secret, first_code, token, PASSWORD, *recovery_codes, *cookies]
    for event in events:
        for name, value in dataclasses.asdict(event).items():
            if isinstance(value, str):
                for hidden in secrets_seen:
                    assert hidden not in value, (event.kind, name)
    for hidden in secrets_seen:
        assert hidden not in caplog.text
