"""The revocation feed (DESIGN §12): one indexed query per poll interval per instance, whatever
the traffic and the number of sessions; rows and in-memory entries go once no access token of
the session can still be valid."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authbridge import (
    Auth,
    AuthConfig,
    AuthMiddleware,
    TokenError,
    get_auth_user_id,
)
from authbridge.revocations import REVOCATION_SKEW_MARGIN, RevocationSet
from authbridge.tokens import generate_private_key_pem
from tests.toolkit.clients import asgi_client
from tests.toolkit.clock import FakeClock
from tests.toolkit.sql import StatementLog, record_statements

PASSWORD = "correct horse battery"


@pytest.mark.pg
async def test_the_poll_is_an_index_scan_on_the_sequence_with_many_rows(fresh_pg_url: str) -> None:
    config = AuthConfig(database_url=fresh_pg_url, jwt_private_keys=(generate_private_key_pem(),))
    async with Auth(config, create_tables=True) as auth:
        async with auth.store.transaction() as conn:
            await conn.execute(
                text(
                    "INSERT INTO auth_revocations (session_id, revoked_at, expires_at)"
                    " SELECT 'session-' || g, now() - g * interval '150 ms',"
                    " now() - g * interval '150 ms' + interval '1 hour'"
                    " FROM generate_series(1, 20000) AS g"
                )
            )
        async with auth.store.transaction() as conn:
            await conn.execute(text("ANALYZE auth_revocations"))
        feed = RevocationSet(auth.clock)
        assert await feed.poll(auth.store) == 20000
        assert len(feed) == 20000
        with record_statements(auth) as log:
            assert await feed.poll(auth.store) < 200
        ((statement, parameters),) = [(s.sql, s.parameters) for s in log.sent]
        async with auth.store.read() as conn:
            plan = "\n".join(
                row[0] for row in await conn.exec_driver_sql("EXPLAIN " + statement, parameters)
            )
    assert "auth_revocations" in statement
    assert "Index" in plan and "auth_revocations_pkey" in plan, plan
    assert "seq >" in statement and "revoked_at" not in statement.split("WHERE", 1)[1]


async def _count_polls_while(log: StatementLog, seconds: float, work: Any) -> int:
    """The statements sent (all of them polls of the feed) while ``work`` runs for ``seconds``."""
    log.take()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await work()
    statements = [s.sql for s in log.take()]
    assert all("auth_revocations" in s for s in statements), statements
    return len(statements)


@pytest.mark.pg
async def test_polls_do_not_depend_on_traffic_or_on_the_number_of_sessions(
    fresh_pg_url: str, engine_factory: Any
) -> None:
    auth: Auth = await engine_factory(
        fresh_pg_url, revocation_poll_interval=timedelta(seconds=0.2), max_sessions_per_user=1000
    )
    user = await auth.sign_up_with_password("many@example.com", PASSWORD)
    sessions = [await auth.sessions.create(user.user_id) for _ in range(300)]
    revoked = sessions[:100]
    await auth.sessions.revoke([s.session_id for s in revoked])

    async def whoami(request: Request) -> Response:
        return JSONResponse({"userId": get_auth_user_id(request)})

    app = AuthMiddleware(Starlette(routes=[Route("/whoami", whoami)]), auth)
    served = {"ok": 0, "refused": 0}
    auth.start_background()
    try:
        async with asgi_client(app, "http://127.0.0.1") as client:

            async def idle() -> None:
                await asyncio.sleep(0.05)

            async def traffic() -> None:
                batch = [
                    client.get(
                        "/whoami",
                        headers={"Authorization": f"Bearer {s.access.token}"},
                    )
                    for s in sessions[served["ok"] % 200 : served["ok"] % 200 + 20] + revoked[:5]
                ]
                for response in await asyncio.gather(*batch):
                    key = "ok" if response.json()["userId"] else "refused"
                    served[key] += 1

            with record_statements(auth) as log:
                quiet = await _count_polls_while(log, 1.2, idle)
                busy = await _count_polls_while(log, 1.2, traffic)
    finally:
        await auth.stop_background()
    requests = served["ok"] + served["refused"]
    print(f"\n{quiet} polls idle, {busy} polls while serving {requests} requests")
    assert requests >= 200
    assert served["refused"] > 0
    # 1.2 s at one poll per 0.2 s: about 6 statements, whatever the traffic.
    assert 3 <= quiet <= 8
    assert 2 <= busy <= 8


async def test_revocations_are_pruned_once_no_token_of_the_session_can_be_valid(
    any_db_url: str, engine_factory: Any, clock: Any
) -> None:
    first: Auth = await engine_factory(any_db_url, clock)
    second: Auth = await engine_factory(any_db_url, clock)
    signed_in = await first.sign_up_with_password("gone@example.com", PASSWORD)
    session_id = signed_in.session_id
    await first.sign_out(session_id)
    await second.revocations.poll(second.store)
    assert session_id in first.revocations and session_id in second.revocations

    lifetime = first.config.jwt_duration
    clock.advance(lifetime - timedelta(seconds=1))
    assert (await first.cleanup()).revocations == 0
    await second.revocations.poll(second.store)
    assert session_id in second.revocations
    with pytest.raises(TokenError) as still_revoked:
        second.verify_token(signed_in.tokens.access.token)
    assert still_revoked.value.reason == "revoked"

    clock.advance(timedelta(seconds=2))
    with pytest.raises(TokenError) as expired:
        second.issuer.verify(signed_in.tokens.access.token)
    assert expired.value.reason == "expired"
    # Kept a margin longer, for tokens issued by instances whose clocks run ahead.
    clock.advance(REVOCATION_SKEW_MARGIN - timedelta(seconds=2))
    assert (await first.cleanup()).revocations == 0
    await second.revocations.poll(second.store)
    assert session_id in second.revocations
    clock.advance(timedelta(seconds=1))
    assert (await first.cleanup()).revocations == 1
    await second.revocations.poll(second.store)
    assert session_id not in second.revocations
    assert len(second.revocations) == 0
    async with first.store.read() as conn:
        left = (await conn.execute(text("SELECT count(*) FROM auth_revocations"))).scalar_one()
    assert left == 0


@pytest.mark.parametrize("behind", [timedelta(seconds=30), timedelta(minutes=30)])
async def test_a_revocation_stamped_by_a_slow_clock_still_reaches_instances_that_polled_since(
    any_db_url: str, engine_factory: Any, clock: Any, behind: timedelta
) -> None:
    """The feed is read by the database's sequence: neither a lagging clock on the revoking
    instance nor a late commit can hide a row behind what another instance has already read."""
    signing_in: Auth = await engine_factory(any_db_url, clock)
    slow = FakeClock(clock() - behind)
    revoking: Auth = await engine_factory(any_db_url, slow)
    watching: Auth = await engine_factory(any_db_url, clock)
    signed_in = await signing_in.sign_up_with_password("skew@example.com", PASSWORD)
    other = await signing_in.sign_in_with_password("skew@example.com", PASSWORD)
    await signing_in.sign_out(other.session_id)
    await watching.revocations.poll(watching.store)
    assert other.session_id in watching.revocations

    await revoking.sign_out(signed_in.session_id)
    await watching.revocations.poll(watching.store)
    assert signed_in.session_id in watching.revocations
    with pytest.raises(TokenError) as refused:
        watching.verify_token(signed_in.tokens.access.token)
    assert refused.value.reason == "revoked"


async def test_feed_sequence_numbers_increase_in_commit_order(
    any_db_url: str, engine_factory: Any, clock: Any
) -> None:
    auth: Auth = await engine_factory(any_db_url, clock)
    user = await auth.sign_up_with_password("order@example.com", PASSWORD)
    sessions = [await auth.sessions.create(user.user_id) for _ in range(20)]
    await asyncio.gather(*(auth.sign_out(s.session_id) for s in sessions))
    async with auth.store.read() as conn:
        rows = (
            await conn.execute(text("SELECT seq, session_id FROM auth_revocations ORDER BY seq"))
        ).all()
    assert len(rows) == 20 and len({r.seq for r in rows}) == 20
    watcher = RevocationSet(auth.clock)
    assert await watcher.poll(auth.store) == 20
    assert watcher.seq == rows[-1].seq
    assert await watcher.poll(auth.store) == 0


async def _until(condition: Any, seconds: float) -> float:
    """Wait (bounded) until ``condition()`` holds; returns the seconds it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.005)
    return time.monotonic() - start


@pytest.mark.pg
async def test_notify_applies_revocations_at_once_and_a_lost_listener_catches_up(
    fresh_pg_url: str, engine_factory: Any
) -> None:
    """Polling is slowed to once a minute: only NOTIFY (and the catch-up read after the
    listener reconnects) can bring the revocations in time."""
    first: Auth = await engine_factory(fresh_pg_url)
    second: Auth = await engine_factory(fresh_pg_url, revocation_poll_interval=timedelta(minutes=1))
    user = await first.sign_up_with_password("listen@example.com", PASSWORD)
    sessions = [await first.sessions.create(user.user_id) for _ in range(2)]

    async def listeners() -> list[int]:
        async with first.store.read() as conn:
            rows = await conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
            return [int(r.pid) for r in rows]

    second.start_background()
    try:
        deadline = time.monotonic() + 10
        while not await listeners():
            assert time.monotonic() < deadline, "the listener never connected"
            await asyncio.sleep(0.02)
        await first.sign_out(sessions[0].session_id)
        took = await _until(lambda: sessions[0].session_id in second.revocations, 2)
        print(f"\nrevocation applied by NOTIFY after {took * 1000:.0f} ms")

        async with first.store.read() as conn:
            for pid in await listeners():
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        # Recorded while nobody listens: the listener reads it when it is back (about 1 s).
        await first.sign_out(sessions[1].session_id)
        await _until(lambda: sessions[1].session_id in second.revocations, 10)
    finally:
        await second.stop_background()
    assert await listeners() == []
