"""Session lifecycle (DESIGN §6): creation, refresh-token rotation with its reuse window, expiry
windows, concurrency on every backend, sign-out variants and cleanup."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authbridge import (
    Auth,
    AuthMiddleware,
    InvalidRefreshToken,
    RefreshTokenReused,
    StoreUnavailable,
    TokenError,
    Tokens,
    get_auth_state,
)
from authbridge.ratelimit import Bucket
from authbridge.revocations import REVOCATION_SKEW_MARGIN
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import FAST_PASSWORDS, AuthFactory, signing_key
from tests.toolkit.sql import record_statements

from .conftest import all_rows, row_count

PASSWORD = "correct horse battery"


async def sign_up(auth: Auth, email: str = "ada@example.com") -> Tokens:
    return (await auth.sign_up_with_password(email, PASSWORD)).tokens


async def token_rows(auth: Auth, session_id: str) -> list[dict[str, Any]]:
    rows = await all_rows(auth, "auth_refresh_tokens")
    return sorted(
        (r for r in rows if r["session_id"] == session_id), key=lambda r: (r["created_at"], r["id"])
    )


def token_id(refresh_token: str) -> str:
    return refresh_token.split(".", 1)[0]


def assert_revoked(auth: Auth, access_token: str) -> None:
    with pytest.raises(TokenError) as caught:
        auth.verify_token(access_token)
    assert caught.value.reason == "revoked"


# -- creation ---------------------------------------------------------------------------------


async def test_sign_in_creates_a_session_with_one_unused_refresh_token(
    auth: Auth, clock: FakeClock
) -> None:
    tokens = await sign_up(auth)
    session = await auth.get_session(tokens.session_id)
    assert session is not None
    assert session.user_id == tokens.user_id
    assert session.created_at == session.last_active_at == clock()
    assert session.expires_at == tokens.session_expires_at == clock() + timedelta(days=30)
    [row] = await token_rows(auth, tokens.session_id)
    assert row["id"] == token_id(tokens.refresh_token)
    assert row["parent_id"] is None and row["first_used_at"] is None
    assert row["expires_at"] == clock() + timedelta(days=30)
    assert auth.verify_token(tokens.access.token).session_id == tokens.session_id


async def test_refresh_tokens_are_stored_only_as_sha256_of_the_secret(auth: Auth) -> None:
    tokens = await sign_up(auth)
    refreshed = await auth.refresh(tokens.refresh_token)
    for issued in (tokens.refresh_token, refreshed.refresh_token):
        tid, secret = issued.split(".", 1)
        rows = {r["id"]: r for r in await all_rows(auth, "auth_refresh_tokens")}
        assert rows[tid]["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
        # The secret appears nowhere in the database.
        for table in auth.store.tables.metadata.sorted_tables:
            for row in await all_rows(auth, table.name):
                assert not any(secret in str(value) for value in row.values()), table.name


async def test_session_ids_and_token_ids_are_opaque_and_unguessable(auth: Auth) -> None:
    a, b = await sign_up(auth, "a@example.com"), await sign_up(auth, "b@example.com")
    for value in (a.session_id, b.session_id, a.user_id, token_id(a.refresh_token)):
        assert len(value) >= 22 and not value.isdigit()
    assert a.session_id != b.session_id


# -- rotation ---------------------------------------------------------------------------------


async def test_first_use_of_a_refresh_token_rotates_to_a_child(
    auth: Auth, clock: FakeClock
) -> None:
    tokens = await sign_up(auth)
    clock.advance(60)
    child = await auth.refresh(tokens.refresh_token)
    assert child.refresh_token != tokens.refresh_token
    assert child.session_id == tokens.session_id and child.user_id == tokens.user_id
    assert child.access.token != tokens.access.token
    rows = await token_rows(auth, tokens.session_id)
    [parent_row] = [r for r in rows if r["parent_id"] is None]
    [child_row] = [r for r in rows if r["parent_id"] is not None]
    assert parent_row["first_used_at"] == clock()
    assert child_row["parent_id"] == parent_row["id"]
    assert child_row["id"] == token_id(child.refresh_token)
    session = await auth.get_session(tokens.session_id)
    assert session is not None and session.last_active_at == clock()


@pytest.mark.parametrize("delay", [0, 5, 10 - 0.001])
async def test_used_token_within_the_window_returns_that_same_child(
    auth: Auth, clock: FakeClock, delay: float
) -> None:
    """A lost response converges: the retry gets the token the client never received."""
    tokens = await sign_up(auth)
    child = await auth.refresh(tokens.refresh_token)
    clock.advance(delay)
    again = await auth.refresh(tokens.refresh_token)
    assert again.refresh_token == child.refresh_token
    assert len(await token_rows(auth, tokens.session_id)) == 2
    # The converged child still rotates normally.
    grandchild = await auth.refresh(again.refresh_token)
    assert token_id(grandchild.refresh_token) not in {
        token_id(tokens.refresh_token),
        token_id(child.refresh_token),
    }


@pytest.mark.parametrize("delay", [10, 10.001, 3600, 86400 * 20])
async def test_used_token_after_the_window_ends_the_session_even_if_its_child_is_unused(
    auth: Auth, clock: FakeClock, delay: float
) -> None:
    """A replayed token is reuse whatever its children's state: it never keeps minting JWTs."""
    tokens = await sign_up(auth)
    child = await auth.refresh(tokens.refresh_token)
    clock.advance(delay)
    with pytest.raises(RefreshTokenReused):
        await auth.refresh(tokens.refresh_token)
    assert await auth.get_session(tokens.session_id) is None
    assert await token_rows(auth, tokens.session_id) == []
    assert [r["session_id"] for r in await all_rows(auth, "auth_revocations")] == [
        tokens.session_id
    ]
    if delay < auth.config.jwt_duration.total_seconds():
        assert_revoked(auth, child.access.token)
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(child.refresh_token)


async def test_used_token_whose_child_was_used_within_the_window_gets_that_child_not_a_branch(
    auth: Auth, clock: FakeClock
) -> None:
    tokens = await sign_up(auth)
    child = await auth.refresh(tokens.refresh_token)
    grandchild = await auth.refresh(child.refresh_token)  # the child is used now
    clock.advance(5)
    again = await auth.refresh(tokens.refresh_token)
    assert again.refresh_token == child.refresh_token
    assert again.session_id == tokens.session_id
    rows = await token_rows(auth, tokens.session_id)
    assert [r["parent_id"] for r in rows].count(token_id(tokens.refresh_token)) == 1
    # The child, retried within its own window, converges on the grandchild too.
    assert (await auth.refresh(again.refresh_token)).refresh_token == grandchild.refresh_token


def hmac_derived_child_secret(parent_secret: str, child_id: str) -> str:
    """How the first release derived a child's secret: HMAC(parent secret, child id)."""
    import base64
    import hmac

    mac = hmac.new(
        parent_secret.encode(), b"authbridge/refresh-child/v1:" + child_id.encode(), "sha256"
    )
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


async def test_child_secrets_are_random_not_derivable_from_the_parent_secret(auth: Auth) -> None:
    tokens = await sign_up(auth)
    child = await auth.refresh(tokens.refresh_token)
    parent_secret = tokens.refresh_token.split(".", 1)[1]
    child_id, child_secret = child.refresh_token.split(".", 1)
    assert child_secret != hmac_derived_child_secret(parent_secret, child_id)
    assert len(child_secret) >= 43


async def sealed_secrets(auth: Auth, session_id: str) -> dict[str, str | None]:
    return {r["id"]: r["sealed_secret"] for r in await token_rows(auth, session_id)}


async def test_a_childs_secret_is_kept_sealed_only_until_its_parents_window_closes(
    auth: Auth, clock: FakeClock
) -> None:
    tokens = await sign_up(auth)
    child = await auth.refresh(tokens.refresh_token)
    child_id, child_secret = child.refresh_token.split(".", 1)
    sealed = (await sealed_secrets(auth, tokens.session_id))[child_id]
    assert sealed and child_secret not in sealed
    # Erased at the next rotation of the chain once the window has closed...
    clock.advance(10)
    grandchild = await auth.refresh(child.refresh_token)
    grandchild_id = token_id(grandchild.refresh_token)
    assert (await sealed_secrets(auth, tokens.session_id))[child_id] is None
    # ...and by cleanup for a chain that is not rotated again.
    clock.advance(timedelta(seconds=10) - timedelta(milliseconds=1))
    await auth.cleanup()
    assert (await sealed_secrets(auth, tokens.session_id))[grandchild_id] is not None
    clock.advance(timedelta(milliseconds=1))
    await auth.cleanup()
    assert set((await sealed_secrets(auth, tokens.session_id)).values()) == {None}


async def test_a_retry_converges_while_the_signing_keys_rotate(
    auth_factory: AuthFactory, clock: FakeClock
) -> None:
    """An instance that already signs with a new key still opens what the old key sealed."""
    from authbridge.tokens import generate_private_key_pem

    old_key = signing_key()
    before = await auth_factory(jwt_private_keys=(old_key,))
    after = await auth_factory(jwt_private_keys=(old_key, generate_private_key_pem()))
    tokens = await sign_up(before)
    child = await before.refresh(tokens.refresh_token)
    clock.advance(1)
    assert (await after.refresh(tokens.refresh_token)).refresh_token == child.refresh_token
    # And the other way round: sealed with the new key, opened where it is known.
    grandchild = await after.refresh(child.refresh_token)
    assert (await after.refresh(child.refresh_token)).refresh_token == grandchild.refresh_token


async def test_a_retry_converges_on_another_instance_with_the_same_keys(
    auth_factory: AuthFactory, clock: FakeClock
) -> None:
    first, second = await auth_factory(), await auth_factory()
    tokens = await sign_up(first)
    child = await first.refresh(tokens.refresh_token)
    clock.advance(3)
    assert (await second.refresh(tokens.refresh_token)).refresh_token == child.refresh_token


async def test_refresh_after_reuse_window_revokes_session(auth: Auth, clock: FakeClock) -> None:
    tokens = await sign_up(auth)
    child = await auth.refresh(tokens.refresh_token)
    grandchild = await auth.refresh(child.refresh_token)
    clock.advance(11)
    with pytest.raises(RefreshTokenReused) as caught:
        await auth.refresh(tokens.refresh_token)
    assert caught.value.code == "RefreshTokenReused"
    assert await auth.get_session(tokens.session_id) is None
    assert await token_rows(auth, tokens.session_id) == []
    [revocation] = await all_rows(auth, "auth_revocations")
    assert revocation["session_id"] == tokens.session_id
    for access in (tokens.access, child.access, grandchild.access):
        assert_revoked(auth, access.token)
    # Every token of the session is dead, including the newest.
    for refresh_token in (child.refresh_token, grandchild.refresh_token):
        with pytest.raises(InvalidRefreshToken):
            await auth.refresh(refresh_token)


async def test_reuse_detection_logs_a_warning(
    auth: Auth, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = await sign_up(auth)
    child = await auth.refresh(tokens.refresh_token)
    await auth.refresh(child.refresh_token)
    clock.advance(60)
    with caplog.at_level("WARNING", logger="authbridge"), pytest.raises(RefreshTokenReused):
        await auth.refresh(tokens.refresh_token)
    assert any(r.levelname == "WARNING" and "reuse" in r.getMessage() for r in caplog.records)
    assert tokens.refresh_token.split(".")[1] not in caplog.text


@pytest.mark.parametrize(
    ("window", "elapsed", "reused"),
    [
        (timedelta(seconds=10), timedelta(seconds=10) - timedelta(milliseconds=1), False),
        (timedelta(seconds=10), timedelta(seconds=10), True),
        (timedelta(seconds=10), timedelta(seconds=10, milliseconds=1), True),
        (timedelta(seconds=30), timedelta(seconds=29), False),
        (timedelta(seconds=30), timedelta(seconds=30), True),
        (timedelta(0), timedelta(0), True),
    ],
)
async def test_reuse_window_boundary(
    auth_factory: AuthFactory,
    clock: FakeClock,
    window: timedelta,
    elapsed: timedelta,
    reused: bool,
) -> None:
    auth = await auth_factory(refresh_reuse_window=window)
    tokens = await sign_up(auth)
    child = await auth.refresh(tokens.refresh_token)
    await auth.refresh(child.refresh_token)
    clock.advance(elapsed)
    if reused:
        with pytest.raises(RefreshTokenReused):
            await auth.refresh(tokens.refresh_token)
        assert await auth.get_session(tokens.session_id) is None
    else:
        again = await auth.refresh(tokens.refresh_token)
        assert again.refresh_token == child.refresh_token


@pytest.mark.parametrize(
    ("elapsed", "valid"),
    [(timedelta(hours=1) - timedelta(milliseconds=1), True), (timedelta(hours=1), False)],
)
async def test_inactive_timeout_boundary(
    auth_factory: AuthFactory, clock: FakeClock, elapsed: timedelta, valid: bool
) -> None:
    auth = await auth_factory(session_inactive_duration=timedelta(hours=1))
    tokens = await sign_up(auth)
    clock.advance(elapsed)
    if valid:
        assert (await auth.refresh(tokens.refresh_token)).session_id == tokens.session_id
    else:
        with pytest.raises(InvalidRefreshToken):
            await auth.refresh(tokens.refresh_token)
        assert await auth.list_sessions(tokens.user_id) == []
        assert await auth.get_session(tokens.session_id) is None


async def test_a_used_token_past_its_inactivity_limit_is_invalid_not_reuse(
    auth_factory: AuthFactory, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that lost the rotated token and comes back after the inactivity limit is
    signed out quietly: no false "reuse detected" alarm."""
    auth = await auth_factory(session_inactive_duration=timedelta(hours=1))
    tokens = await sign_up(auth)
    clock.advance(timedelta(minutes=10))
    lost = await auth.refresh(tokens.refresh_token)
    await auth.refresh(lost.refresh_token)
    clock.advance(timedelta(minutes=50))  # the original token expires now
    with caplog.at_level("WARNING", logger="authbridge"), pytest.raises(InvalidRefreshToken):
        await auth.refresh(tokens.refresh_token)
    assert "reuse" not in caplog.text


async def test_inactive_timeout_slides_with_each_refresh(
    auth_factory: AuthFactory, clock: FakeClock
) -> None:
    auth = await auth_factory(session_inactive_duration=timedelta(hours=1))
    current = await sign_up(auth)
    for _ in range(5):  # 5 x 50 minutes: far past one inactive period in total
        clock.advance(timedelta(minutes=50))
        current = await auth.refresh(current.refresh_token)
    clock.advance(timedelta(hours=1) - timedelta(milliseconds=1))
    current = await auth.refresh(current.refresh_token)
    clock.advance(timedelta(hours=1))
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(current.refresh_token)


@pytest.mark.parametrize(
    ("elapsed", "valid"),
    [(timedelta(hours=2) - timedelta(milliseconds=1), True), (timedelta(hours=2), False)],
)
async def test_total_lifetime_boundary_is_never_extended_by_refreshes(
    auth_factory: AuthFactory, clock: FakeClock, elapsed: timedelta, valid: bool
) -> None:
    auth = await auth_factory(
        session_total_duration=timedelta(hours=2), session_inactive_duration=timedelta(hours=1)
    )
    start = clock()
    current = await sign_up(auth)
    while clock() + timedelta(minutes=40) < start + elapsed:
        clock.advance(timedelta(minutes=40))
        current = await auth.refresh(current.refresh_token)
        assert current.session_expires_at == start + timedelta(hours=2)
    clock.now = start + elapsed
    if valid:
        assert (await auth.refresh(current.refresh_token)).session_id == current.session_id
    else:
        with pytest.raises(InvalidRefreshToken):
            await auth.refresh(current.refresh_token)
        assert await auth.get_session(current.session_id) is None


async def test_access_tokens_never_outlive_their_session(
    auth_factory: AuthFactory, clock: FakeClock
) -> None:
    auth = await auth_factory(
        session_total_duration=timedelta(hours=2), jwt_duration=timedelta(hours=1)
    )
    start = clock()
    tokens = await sign_up(auth)
    assert tokens.access.expires_at == start + timedelta(hours=1)
    clock.advance(timedelta(minutes=90))
    refreshed = await auth.refresh(tokens.refresh_token)
    assert refreshed.access.expires_at == start + timedelta(hours=2)
    clock.advance(timedelta(minutes=30))
    with pytest.raises(TokenError) as caught:
        auth.verify_token(refreshed.access.token)
    assert caught.value.reason == "expired"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: "",
        lambda t: "not-a-token",
        lambda t: t.split(".")[0],
        lambda t: t + "x",
        lambda t: t.split(".")[0] + "." + "A" * 43,  # right id, wrong secret
        lambda t: "B" * 22 + "." + t.split(".")[1],  # unknown id
        lambda t: t.replace(".", ".\u00e9"),
    ],
)
async def test_invalid_refresh_tokens_are_rejected_without_side_effects(
    auth: Auth, mangle: Any
) -> None:
    tokens = await sign_up(auth)
    with pytest.raises(InvalidRefreshToken) as caught:
        await auth.refresh(mangle(tokens.refresh_token))
    assert caught.value.code == "InvalidRefreshToken"
    [row] = await token_rows(auth, tokens.session_id)
    assert row["first_used_at"] is None
    assert (await auth.refresh(tokens.refresh_token)).session_id == tokens.session_id


async def test_refresh_against_an_unreachable_database_is_store_unavailable(
    clock: FakeClock,
) -> None:
    """Transient failures must not look like a bad token (which would sign the user out)."""
    from authbridge import AuthConfig

    auth = Auth(
        AuthConfig(
            database_url="postgresql+asyncpg://postgres@127.0.0.1:1/none",
            jwt_private_keys=(signing_key(),),
            password=FAST_PASSWORDS,
        ),
        clock=clock,
    )
    try:
        await auth.open()
        with pytest.raises(StoreUnavailable):
            await auth.refresh("A" * 22 + "." + "B" * 43)
    finally:
        await auth.close()


# -- concurrency ------------------------------------------------------------------------------


async def assert_one_consistent_chain(auth: Auth, tokens: Tokens, results: list[Tokens]) -> None:
    assert {r.refresh_token for r in results} == {results[0].refresh_token}
    assert {r.session_id for r in results} == {tokens.session_id}
    rows = await token_rows(auth, tokens.session_id)
    assert len(rows) == 2
    [parent] = [r for r in rows if r["parent_id"] is None]
    [child] = [r for r in rows if r["parent_id"] is not None]
    assert parent["id"] == token_id(tokens.refresh_token) and parent["first_used_at"] is not None
    assert child["parent_id"] == parent["id"] and child["first_used_at"] is None
    assert child["id"] == token_id(results[0].refresh_token)
    # The chain goes on from the converged child.
    assert (await auth.refresh(results[0].refresh_token)).session_id == tokens.session_id


async def test_twenty_concurrent_refreshes_of_one_token_converge_on_one_child(
    auth: Auth,
) -> None:
    tokens = await sign_up(auth)
    results = await asyncio.gather(*(auth.refresh(tokens.refresh_token) for _ in range(20)))
    await assert_one_consistent_chain(auth, tokens, list(results))


async def test_concurrent_refreshes_from_two_instances_converge_on_one_child(
    auth_factory: AuthFactory,
) -> None:
    """Two engines on one database stand in for two server processes."""
    first, second = await auth_factory(), await auth_factory()
    tokens = await sign_up(first)
    results = await asyncio.gather(
        *((first if i % 2 else second).refresh(tokens.refresh_token) for i in range(20))
    )
    await assert_one_consistent_chain(first, tokens, list(results))


async def test_rotation_locks_the_token_row_on_postgresql(auth: Auth, db_url: str) -> None:
    tokens = await sign_up(auth)
    with record_statements(auth) as log:
        await auth.refresh(tokens.refresh_token)
    locking = [s for s in log.statements if "FOR UPDATE" in s]
    if db_url.startswith("postgresql"):
        assert len(locking) == 1 and locking[0].rstrip().endswith(
            "FOR UPDATE OF auth_refresh_tokens"
        )
    else:  # SQLite has no row locks: BEGIN IMMEDIATE serialises the whole transaction
        assert locking == []


async def test_concurrent_refreshes_within_the_window_after_the_child_was_used_all_succeed(
    auth_factory: AuthFactory, clock: FakeClock
) -> None:
    first, second = await auth_factory(), await auth_factory()
    tokens = await sign_up(first)
    child = await first.refresh(tokens.refresh_token)
    await first.refresh(child.refresh_token)
    clock.advance(3)
    results = await asyncio.gather(
        *((first if i % 2 else second).refresh(tokens.refresh_token) for i in range(10))
    )
    # No new branch: every retry gets the child.
    assert {r.refresh_token for r in results} == {child.refresh_token}


async def test_concurrent_sign_out_and_refresh_leave_no_live_token(
    auth_factory: AuthFactory,
) -> None:
    first, second = await auth_factory(), await auth_factory()
    tokens = await sign_up(first)
    outcomes = await asyncio.gather(
        *(second.refresh(tokens.refresh_token) for _ in range(5)),
        first.sign_out(tokens.session_id),
        return_exceptions=True,
    )
    assert all(o is None or isinstance(o, (Tokens, InvalidRefreshToken)) for o in outcomes)
    assert await token_rows(first, tokens.session_id) == []
    assert await first.get_session(tokens.session_id) is None


# -- sign-out and listing ---------------------------------------------------------------------


async def test_sign_out_deletes_the_session_and_its_tokens_and_revokes_its_jwts(
    auth: Auth,
) -> None:
    tokens = await sign_up(auth)
    child = await auth.refresh(tokens.refresh_token)
    other = await sign_up(auth, "other@example.com")
    await auth.sign_out(tokens.session_id)
    assert await auth.get_session(tokens.session_id) is None
    assert await token_rows(auth, tokens.session_id) == []
    assert_revoked(auth, child.access.token)
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(child.refresh_token)
    assert auth.verify_token(other.access.token).user_id == other.user_id
    await auth.sign_out(tokens.session_id)  # idempotent


async def test_sign_out_is_seen_by_other_instances_after_their_next_poll(
    auth_factory: AuthFactory,
) -> None:
    first, second = await auth_factory(), await auth_factory()
    tokens = await sign_up(first)
    assert second.verify_token(tokens.access.token).user_id == tokens.user_id
    await first.sign_out(tokens.session_id)
    assert second.verify_token(tokens.access.token).user_id == tokens.user_id  # not polled yet
    await second.poll_revocations()
    assert_revoked(second, tokens.access.token)


async def test_an_instance_started_after_a_sign_out_knows_the_revocation(
    auth_factory: AuthFactory,
) -> None:
    first = await auth_factory()
    tokens = await sign_up(first)
    await first.sign_out(tokens.session_id)
    later = await auth_factory()
    assert_revoked(later, tokens.access.token)


def watch_polls(auth: Auth, fail_first: int = 0) -> tuple[list[int], asyncio.Event]:
    """Wrap ``auth``'s revocation poll: count calls (the first ``fail_first`` raise
    StoreUnavailable) and set the event after each successful one."""
    calls: list[int] = []
    polled = asyncio.Event()
    real_poll = auth.revocations.poll

    async def poll(store: Any) -> int:
        calls.append(len(calls))
        if len(calls) <= fail_first:
            raise StoreUnavailable("database unavailable: test")
        rows = await real_poll(store)
        polled.set()
        return rows

    auth.revocations.poll = poll  # type: ignore[method-assign]
    return calls, polled


async def test_background_poller_picks_up_revocations_from_other_instances(
    auth_factory: AuthFactory,
) -> None:
    first = await auth_factory()
    second = await auth_factory(revocation_poll_interval=timedelta(milliseconds=10))
    tokens = await sign_up(first)
    await first.sign_out(tokens.session_id)
    _, polled = watch_polls(second)
    second.start_background()
    try:
        await asyncio.wait_for(polled.wait(), timeout=5)
    finally:
        await second.stop_background()
    assert_revoked(second, tokens.access.token)


async def test_background_poller_survives_database_errors(
    auth_factory: AuthFactory, caplog: pytest.LogCaptureFixture
) -> None:
    auth = await auth_factory(
        revocation_poll_interval=timedelta(milliseconds=10), revocation_notify=False
    )
    calls, polled = watch_polls(auth, fail_first=2)
    auth.start_background()
    try:
        await asyncio.wait_for(polled.wait(), timeout=5)
    finally:
        await auth.stop_background()
    assert len(calls) >= 3
    assert caplog.text.count("background poll failed") >= 2


async def test_revocations_are_forgotten_once_no_token_can_be_valid(
    auth: Auth, clock: FakeClock
) -> None:
    tokens = await sign_up(auth)
    await auth.sign_out(tokens.session_id)
    assert tokens.session_id in auth.revocations
    clock.advance(timedelta(hours=1))
    await auth.poll_revocations()
    # Kept a margin longer than the JWT lifetime, for other instances' clocks.
    assert tokens.session_id in auth.revocations
    clock.advance(REVOCATION_SKEW_MARGIN)
    await auth.poll_revocations()
    assert tokens.session_id not in auth.revocations


async def test_sign_out_everywhere_ends_every_session_of_the_user_only(auth: Auth) -> None:
    first = await sign_up(auth)
    sessions = [first] + [
        (await auth.sign_in_with_password("ada@example.com", PASSWORD)).tokens for _ in range(2)
    ]
    bystander = await sign_up(auth, "bob@example.com")
    assert await auth.sign_out_everywhere(first.user_id) == 3
    for tokens in sessions:
        assert_revoked(auth, tokens.access.token)
        with pytest.raises(InvalidRefreshToken):
            await auth.refresh(tokens.refresh_token)
    assert await auth.list_sessions(first.user_id) == []
    assert len(await auth.list_sessions(bystander.user_id)) == 1
    assert await auth.sign_out_everywhere(first.user_id) == 0


async def test_sign_out_other_sessions_keeps_the_current_one(auth: Auth) -> None:
    current = await sign_up(auth)
    others = [
        (await auth.sign_in_with_password("ada@example.com", PASSWORD)).tokens for _ in range(2)
    ]
    assert await auth.sign_out_other_sessions(current.user_id, current.session_id) == 2
    assert [s.session_id for s in await auth.list_sessions(current.user_id)] == [current.session_id]
    assert auth.verify_token(current.access.token).session_id == current.session_id
    for tokens in others:
        assert_revoked(auth, tokens.access.token)


async def test_list_sessions_shows_live_sessions_most_recently_active_first(
    auth: Auth, clock: FakeClock
) -> None:
    first = await sign_up(auth)
    clock.advance(60)
    second = (
        await auth.sign_in(
            "password",
            {"flow": "signIn", "email": "ada@example.com", "password": PASSWORD},
            ip="203.0.113.9",
            user_agent="Firefox",
        )
    ).tokens
    clock.advance(60)
    await auth.refresh(first.refresh_token)  # the first is now the most recently active
    listed = await auth.list_sessions(first.user_id)
    assert [s.session_id for s in listed] == [first.session_id, second.session_id]
    assert listed[0].last_active_at == clock()
    assert (listed[1].user_agent, listed[1].created_ip) == ("Firefox", "203.0.113.9")


async def test_sign_in_with_replace_session_ends_the_previous_session(auth: Auth) -> None:
    old = await sign_up(auth)
    new = await auth.sign_in(
        "password",
        {"flow": "signIn", "email": "ada@example.com", "password": PASSWORD},
        replace_session=old.session_id,
    )
    assert [s.session_id for s in await auth.list_sessions(old.user_id)] == [new.session_id]
    assert_revoked(auth, old.access.token)


async def test_deleting_a_user_cascades_to_accounts_sessions_and_tokens(auth: Auth) -> None:
    tokens = await sign_up(auth)
    users = auth.store.tables.users
    async with auth.store.transaction() as conn:
        await conn.execute(users.delete().where(users.c.id == tokens.user_id))
    for table in ("auth_accounts", "auth_sessions", "auth_refresh_tokens"):
        assert await row_count(auth, table) == 0


# -- cleanup ----------------------------------------------------------------------------------


async def test_cleanup_removes_expired_rows_and_keeps_live_ones(
    auth_factory: AuthFactory, clock: FakeClock
) -> None:
    auth = await auth_factory(
        session_total_duration=timedelta(days=2), session_inactive_duration=timedelta(days=1)
    )
    start = clock()
    expired_absolute = await sign_up(auth, "absolute@example.com")
    inactive = await sign_up(auth, "inactive@example.com")
    signed_out = await sign_up(auth, "out@example.com")
    await auth.sign_out(signed_out.session_id)
    await auth.rate_limiter.consume([Bucket("ip:198.51.100.1", 100)])
    # Keep the first alive past the inactive limit, until its absolute end.
    clock.advance(timedelta(hours=20))
    expired_absolute = await auth.refresh(expired_absolute.refresh_token)
    clock.advance(timedelta(hours=20))
    expired_absolute = await auth.refresh(expired_absolute.refresh_token)
    clock.now = start + timedelta(days=2) - timedelta(hours=1)
    live = await sign_up(auth, "live@example.com")
    clock.advance(timedelta(minutes=30))
    await auth.sign_out((await auth.sign_in_with_password("live@example.com", PASSWORD)).session_id)
    await auth.rate_limiter.consume([Bucket("ip:198.51.100.2", 100)])
    clock.now = start + timedelta(days=2)

    report = await auth.cleanup()

    remaining_sessions = {r["id"] for r in await all_rows(auth, "auth_sessions")}
    assert remaining_sessions == {live.session_id}
    remaining_tokens = {r["session_id"] for r in await all_rows(auth, "auth_refresh_tokens")}
    assert remaining_tokens == {live.session_id}
    assert len(await all_rows(auth, "auth_revocations")) == 1  # the recent sign-out
    assert {r["identifier"] for r in await all_rows(auth, "auth_rate_limits")} == {
        "ip:198.51.100.2"
    }
    assert (report.sessions, report.refresh_tokens) == (2, 4)
    assert report.revocations == 1 and report.rate_limits == 1
    assert inactive.session_id not in remaining_sessions
    assert (await auth.refresh(live.refresh_token)).session_id == live.session_id
    assert await auth.cleanup() == type(report)()


async def test_cleanup_works_in_bounded_batches(auth: Auth, clock: FakeClock) -> None:
    for i in range(5):
        await auth.rate_limiter.consume([Bucket(f"ip:192.0.2.{i}", 100)])
    clock.advance(timedelta(hours=2))
    report = await auth.cleanup(batch_size=2, max_batches=2)
    assert report.rate_limits == 4
    assert (await auth.cleanup(batch_size=2)).rate_limits == 1


async def test_cleanup_takes_each_kind_batch_by_batch_and_reports_the_running_total(
    auth_factory: AuthFactory, clock: FakeClock
) -> None:
    auth = await auth_factory(
        passkeys=True, totp=True, site_url="https://testserver", anonymous_idle=timedelta(hours=1)
    )
    for i in range(5):  # five of each kind, some in every cleanup function
        tokens = await sign_up(auth, f"user{i}@example.com")
        if i < 3:
            await auth.sign_out(tokens.session_id)  # a revocation
        else:
            await auth.refresh(tokens.refresh_token)  # a sealed secret, erased but not deleted
        await auth.factors.begin_totp(tokens.user_id, "sealed-secret", clock())
        expires = clock() + timedelta(minutes=5)
        await auth.passkeys.add_challenge("signin", str(i) * 43, None, clock(), expires)
        await auth.users.create_anonymous(now=clock())
        await auth.rate_limiter.consume([Bucket(f"ip:192.0.2.{i}", 100)])
    clock.advance(timedelta(hours=2))
    kinds = ("revocations", "rate_limits", "passkey_challenges", "totp_enrolments")
    seen: list[int] = []

    first = await auth.cleanup(batch_size=2, max_batches=1, progress=seen.append)

    assert [getattr(first, kind) for kind in (*kinds, "anonymous_users")] == [2] * 5
    # After each batch of codes, tokens, sessions, revocations and rate limits, the rows deleted
    # so far in the run (the sealed secrets are not rows deleted); then the run's total.
    assert seen == [0, 0, 0, 2, 4, 10]
    seen.clear()

    rest = await auth.cleanup(batch_size=2, progress=seen.append)

    assert [getattr(rest, kind) for kind in kinds] == [1, 3, 3, 3]
    assert rest.anonymous_users == 3
    assert seen == [0, 0, 0, 1, 3, 4, 13]  # a full batch of rate limits, then a short one
    assert await auth.cleanup(batch_size=2) == type(rest)()
    assert len(await auth.list_sessions(tokens.user_id)) == 1  # the live session stays


async def test_tokens_survive_a_close_and_reopen(auth: Auth) -> None:
    tokens = await sign_up(auth)
    await auth.close()
    await auth.open()
    assert (await auth.refresh(tokens.refresh_token)).session_id == tokens.session_id
    assert (await auth.sign_in_with_password("ada@example.com", PASSWORD)).user_id == tokens.user_id


async def test_session_activity_column_is_updated_on_rotation_only(
    auth: Auth, clock: FakeClock
) -> None:
    tokens = await sign_up(auth)
    child = await auth.refresh(tokens.refresh_token)
    clock.advance(5)
    await auth.refresh(tokens.refresh_token)  # converges on the unused child: no new activity
    session = await auth.get_session(tokens.session_id)
    assert session is not None and session.last_active_at == clock() - timedelta(seconds=5)
    await auth.refresh(child.refresh_token)
    session = await auth.get_session(tokens.session_id)
    assert session is not None and session.last_active_at == clock()


async def test_a_session_whose_tokens_were_removed_is_not_listed(auth: Auth) -> None:
    tokens = await sign_up(auth)
    tok = auth.store.tables.refresh_tokens
    async with auth.store.transaction() as conn:
        await conn.execute(
            update(tok)
            .where(tok.c.session_id == tokens.session_id)
            .values(expires_at=tokens.access.issued_at)
        )
    assert await auth.list_sessions(tokens.user_id) == []
    async with auth.store.read() as conn:
        assert (await conn.execute(select(tok.c.id))).all()


# -- the stolen-token story, over HTTP --------------------------------------------------------


def cookie_values(response: httpx.Response) -> dict[str, str]:
    pairs = (h.split(";", 1)[0].partition("=") for h in response.headers.get_list("set-cookie"))
    return {name.strip(): value.strip() for name, _, value in pairs}


async def test_a_thief_who_rotates_first_is_cut_off_when_the_victim_refreshes_after_the_window(
    auth: Auth, clock: FakeClock
) -> None:
    async def whoami(request: Request) -> Response:
        state = get_auth_state(request)
        return JSONResponse({"userId": state.user_id, "reason": state.error})

    app = AuthMiddleware(Starlette(routes=[Route("/whoami", whoami)]), auth)
    origin = "http://localhost:8000"

    async def forget_cookies(response: httpx.Response) -> None:
        http.cookies.clear()

    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=origin,
        event_hooks={"response": [forget_cookies]},
    )

    async def refresh(token: str) -> httpx.Response:
        return await http.post(
            "/api/auth/refresh",
            headers={"Origin": origin, "Cookie": f"authbridge.refresh={token}"},
        )

    async def whoami_with(jwt: str) -> dict[str, Any]:
        response = await http.get("/whoami", headers={"Authorization": f"Bearer {jwt}"})
        return dict(response.json())

    async with http:
        signed_up = await http.post(
            "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": "signUp", "email": "victim@example.com", "password": PASSWORD},
            },
            headers={"Origin": origin},
        )
        assert signed_up.status_code == 200, signed_up.text
        user_id = signed_up.json()["userId"]
        victims_refresh = cookie_values(signed_up)["authbridge.refresh"]

        # The thief copied the refresh cookie and rotates first.
        stolen = await refresh(victims_refresh)
        assert stolen.status_code == 200, stolen.text
        thiefs_jwt, thiefs_refresh = (
            stolen.json()["token"],
            cookie_values(stolen)["authbridge.refresh"],
        )
        assert (await whoami_with(thiefs_jwt))["userId"] == user_id

        # The victim comes back after the reuse window with the token they still hold.
        clock.advance(auth.config.refresh_reuse_window + timedelta(minutes=5))
        victim = await refresh(victims_refresh)
        assert victim.status_code == 401
        assert victim.json() == {"error": "RefreshTokenReused"}
        assert cookie_values(victim)["authbridge.refresh"] == ""

        # The whole session ended: the thief's access and refresh tokens stop working too.
        assert await whoami_with(thiefs_jwt) == {"userId": None, "reason": "revoked"}
        thief = await refresh(thiefs_refresh)
        assert thief.status_code == 401
        assert thief.json() == {"error": "InvalidRefreshToken"}
        assert await auth.list_sessions(user_id) == []


# -- sessions per user --------------------------------------------------------------------------


async def test_a_new_session_past_the_cap_ends_the_oldest_with_a_revocation(
    auth_factory: AuthFactory, clock: FakeClock
) -> None:
    auth = await auth_factory(max_sessions_per_user=3)
    sessions = [await sign_up(auth)]
    for _ in range(3):
        clock.advance(1)
        sessions.append((await auth.sign_in_with_password("ada@example.com", PASSWORD)).tokens)
    oldest, *newest = sessions
    listed = await auth.list_sessions(oldest.user_id)
    assert {s.session_id for s in listed} == {s.session_id for s in newest}
    assert_revoked(auth, oldest.access.token)
    assert [r["session_id"] for r in await all_rows(auth, "auth_revocations")] == [
        oldest.session_id
    ]
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(oldest.refresh_token)
    for tokens in newest:
        assert auth.verify_token(tokens.access.token).session_id == tokens.session_id


async def test_the_cap_counts_only_the_users_own_sessions_and_keeps_the_new_one(
    auth_factory: AuthFactory,
) -> None:
    """Sessions created at the same instant (the fake clock does not move): the new one is kept
    whatever the order of ids."""
    auth = await auth_factory(max_sessions_per_user=1)
    other = await sign_up(auth, "other@example.com")
    first = await sign_up(auth)
    for _ in range(5):
        latest = (await auth.sign_in_with_password("ada@example.com", PASSWORD)).tokens
        [kept] = await auth.list_sessions(first.user_id)
        assert kept.session_id == latest.session_id
    assert [s.session_id for s in await auth.list_sessions(other.user_id)] == [other.session_id]


def test_the_session_cap_and_notify_switch_come_from_the_environment() -> None:
    from authbridge import AuthConfig, ConfigError

    assert AuthConfig().max_sessions_per_user == 100
    assert AuthConfig().revocation_notify is True
    config = AuthConfig.from_env(
        {"AUTHBRIDGE_MAX_SESSIONS_PER_USER": "5", "AUTHBRIDGE_REVOCATION_NOTIFY": "false"}
    )
    assert config.max_sessions_per_user == 5 and config.revocation_notify is False
    for name, value in (
        ("AUTHBRIDGE_MAX_SESSIONS_PER_USER", "0"),
        ("AUTHBRIDGE_MAX_SESSIONS_PER_USER", "many"),
        ("AUTHBRIDGE_REVOCATION_NOTIFY", "sometimes"),
    ):
        with pytest.raises(ConfigError) as caught:
            AuthConfig.from_env({name: value})
        assert name in str(caught.value)
