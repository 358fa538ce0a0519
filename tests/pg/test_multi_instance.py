"""Two real server processes on one PostgreSQL database (DESIGN §12): sessions, sign-out,
refresh races and rate limits are shared; a database outage never becomes a 500."""

from __future__ import annotations

import asyncio
import random
import statistics
import time

import httpx
import pytest

from .conftest import (
    Cluster,
    Credentials,
    Instance,
    fetch,
    new_email,
    set_cookies,
    sign_in,
    token_hash,
)

pytestmark = pytest.mark.pg

NOTIFY_MEDIAN_TARGET = 0.1
"""With LISTEN/NOTIFY, another instance refuses a signed-out JWT within 100 ms (median)."""
REVOCATION_DEADLINE = 2.0
"""Polling alone (NOTIFY disabled or broken): the poll interval is 1 s; allow one more for
scheduling on a busy machine."""


async def whoami(
    client: httpx.AsyncClient, instance: Instance, *, bearer: str | None = None, **cookies: str
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    if cookies:
        headers["Cookie"] = "; ".join(f"authbridge.{k}={v}" for k, v in cookies.items())
    return await client.get(instance.origin + "/api/whoami", headers=headers)


async def refresh(
    client: httpx.AsyncClient, instance: Instance, refresh_token: str
) -> httpx.Response:
    return await client.post(
        instance.origin + "/api/auth/refresh",
        headers={"Origin": instance.origin, "Cookie": f"authbridge.refresh={refresh_token}"},
    )


async def test_a_session_started_on_a_is_authenticated_on_b(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    creds = await sign_in(client, cluster.a, new_email(), flow="signUp")
    by_cookie = await whoami(client, cluster.b, jwt=creds.jwt)
    assert by_cookie.status_code == 200
    assert by_cookie.json() == {"userId": creds.user_id, "sessionId": creds.session_id}
    by_bearer = await whoami(client, cluster.b, bearer=creds.jwt)
    assert by_bearer.json()["sessionId"] == creds.session_id


async def _revocation_delays(
    client: httpx.AsyncClient,
    pairs: list[tuple[Instance, Instance]],
    trials: int,
    *,
    jitter: float = 0.0,
) -> list[float]:
    """Sign in on the first of a pair, sign out on the second (after a random pause of up to
    ``jitter`` seconds, so sign-outs do not fall in step with the poll); how long until the
    first refuses the JWT (checked every 5 ms)."""
    email = new_email()
    await sign_in(client, pairs[0][0], email, flow="signUp")
    delays: list[float] = []
    for trial in range(trials):
        first, second = pairs[trial % len(pairs)]
        creds = await sign_in(client, first, email)
        assert (await whoami(client, first, bearer=creds.jwt)).status_code == 200
        await asyncio.sleep(random.uniform(0, jitter))
        signed_out = await client.post(
            second.origin + "/api/auth/signout",
            headers={"Origin": second.origin, "Cookie": f"authbridge.jwt={creds.jwt}"},
        )
        assert signed_out.status_code == 200
        start = time.monotonic()
        refused = None
        while time.monotonic() - start < REVOCATION_DEADLINE + 1:
            response = await whoami(client, first, bearer=creds.jwt)
            if response.status_code == 401:
                refused = time.monotonic() - start
                assert response.json()["reason"] == "revoked"
                break
            assert response.status_code == 200
            await asyncio.sleep(0.005)
        assert refused is not None and refused <= REVOCATION_DEADLINE, f"trial {trial}: {refused}"
        delays.append(refused)
    return delays


def _report(label: str, delays: list[float]) -> str:
    return (
        f"revocation latency {label}: median {statistics.median(delays) * 1000:.0f} ms,"
        f" max {max(delays) * 1000:.0f} ms over {len(delays)} trials"
    )


async def test_sign_out_reaches_other_instances_at_once_with_notify_and_by_the_next_poll_without(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    with_notify = await _revocation_delays(
        client, [(cluster.a, cluster.b), (cluster.b, cluster.a)], trials=20
    )
    # D does not LISTEN: it sees revocations at its next poll (NOTIFY disabled or broken).
    polling_only = await _revocation_delays(
        client, [(cluster.d, cluster.a), (cluster.d, cluster.b)], trials=10, jitter=1.0
    )
    print("\n" + _report("with NOTIFY", with_notify) + "\n" + _report("polling only", polling_only))
    assert statistics.median(with_notify) <= NOTIFY_MEDIAN_TARGET
    assert max(polling_only) <= REVOCATION_DEADLINE
    # Polling alone takes about half an interval on average: NOTIFY is what makes it instant.
    assert statistics.median(polling_only) > statistics.median(with_notify)


async def test_fifty_concurrent_refreshes_over_both_instances_converge(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    creds = await sign_in(client, cluster.a, new_email(), flow="signUp")
    responses = await asyncio.gather(
        *(refresh(client, cluster.instances[i % 2], creds.refresh) for i in range(50))
    )
    assert [r.status_code for r in responses] == [200] * 50
    assert {r.json()["sessionId"] for r in responses} == {creds.session_id}
    issued = {set_cookies(r)["authbridge.refresh"] for r in responses}

    rows = await fetch(
        "SELECT id, parent_id, token_hash, first_used_at FROM auth_refresh_tokens"
        " WHERE session_id = $1",
        cluster.dsn,
        creds.session_id,
    )
    by_id = {row["id"]: row for row in rows}
    root_id, _ = token_hash(creds.refresh)
    assert by_id[root_id]["parent_id"] is None
    assert by_id[root_id]["first_used_at"] is not None
    children = [row for row in rows if row["id"] != root_id]
    assert children and all(row["parent_id"] == root_id for row in children)
    for token in issued:
        token_id, digest = token_hash(token)
        assert by_id[token_id]["token_hash"] == digest
        assert by_id[token_id]["parent_id"] == root_id
    # Convex semantics: while the first child is unused, every retry gets that same child.
    assert len(children) == 1 and len(issued) == 1
    assert await fetch("SELECT 1 FROM auth_sessions WHERE id = $1", cluster.dsn, creds.session_id)
    assert not await fetch(
        "SELECT 1 FROM auth_revocations WHERE session_id = $1", cluster.dsn, creds.session_id
    )
    (child,) = issued
    for instance in cluster.instances:
        assert (await refresh(client, instance, child)).status_code == 200


async def test_failed_attempts_count_on_every_instance(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    email = new_email()
    await sign_in(client, cluster.a, email, flow="signUp")

    async def attempt(instance: Instance, password: str) -> httpx.Response:
        return await client.post(
            instance.origin + "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": "signIn", "email": email, "password": password},
            },
            headers={"Origin": instance.origin},
        )

    for i in range(10):
        failed = await attempt(cluster.instances[i % 2], f"wrong password {i}")
        assert failed.status_code == 401
        assert failed.json() == {"error": "InvalidCredentials"}
    for instance in cluster.instances:
        limited = await attempt(instance, "another wrong one")
        assert limited.status_code == 429
        assert limited.json() == {"error": "TooManyAttempts"}
        assert int(limited.headers["retry-after"]) >= 1


async def test_terminated_database_connections_are_replaced_transparently(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    creds = await sign_in(client, cluster.a, new_email(), flow="signUp")
    await fetch(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = $1 AND pid <> pg_backend_pid()",
        cluster.dsn,
        cluster.database,
    )
    token = creds.refresh
    for instance in cluster.instances:
        response = await refresh(client, instance, token)
        assert response.status_code == 200, response.text
        token = set_cookies(response)["authbridge.refresh"]


async def _counts(cluster: Cluster) -> dict[str, int]:
    counts = {}
    for table in ("users", "auth_accounts", "auth_sessions", "auth_refresh_tokens"):
        rows = await fetch(f"SELECT count(*) AS n FROM {table}", cluster.dsn)
        counts[table] = int(rows[0]["n"])
    return counts


async def test_database_down_never_gives_500_and_leaves_no_partial_writes(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    email = new_email()
    creds = await sign_in(client, cluster.a, email, flow="signUp")
    b = cluster.b
    before = await _counts(cluster)
    cluster.proxy.kill()
    try:
        await _assert_degraded(client, b, creds, email)
    finally:
        cluster.proxy.start()
    assert await _counts(cluster) == before
    # The cookies the outage left alone still work once the database is back.
    deadline = time.monotonic() + 10
    while True:
        response = await refresh(client, b, creds.refresh)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        assert response.status_code == 503
        await asyncio.sleep(0.2)
    assert response.status_code == 200, response.text


async def _hanging_database(
    cluster: Cluster, client: httpx.AsyncClient, instance: Instance
) -> None:
    creds = await sign_in(client, cluster.a, new_email(), flow="signUp")
    cluster.proxy.start(stall=True)
    try:
        start = time.monotonic()
        assert (await client.get(instance.origin + "/")).status_code == 200
        assert (await whoami(client, instance, bearer=creds.jwt)).status_code == 200
        assert (await whoami(client, instance, jwt=creds.jwt)).status_code == 200
        assert time.monotonic() - start < 2
        try:
            hanging = await client.post(
                instance.origin + "/api/auth/refresh",
                headers={
                    "Origin": instance.origin,
                    "Cookie": f"authbridge.refresh={creds.refresh}",
                },
                timeout=HANGING_DEADLINE,
            )
        except httpx.TimeoutException:
            pytest.fail(f"no answer within {HANGING_DEADLINE} s while the database hangs")
        assert hanging.status_code == 503, hanging.text
        assert hanging.json() == {"error": "StoreUnavailable"}
    finally:
        cluster.proxy.start()


HANGING_DEADLINE = 9.0


async def test_a_hanging_database_gives_503_with_driver_timeouts(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    await _hanging_database(cluster, client, cluster.c)


async def test_a_hanging_database_gives_503_with_default_settings(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    await _hanging_database(cluster, client, cluster.b)


async def _assert_degraded(
    client: httpx.AsyncClient, b: Instance, creds: Credentials, email: str
) -> None:
    assert (await client.get(b.origin + "/")).status_code == 200
    by_bearer = await whoami(client, b, bearer=creds.jwt)
    assert by_bearer.status_code == 200 and by_bearer.json()["userId"] == creds.user_id
    assert (await whoami(client, b, jwt=creds.jwt, refresh=creds.refresh)).status_code == 200

    # Only the refresh cookie: the page runs anonymous, and the cookies are kept.
    page = await whoami(client, b, refresh=creds.refresh)
    assert page.status_code == 401 and page.json()["reason"] == "unavailable"
    assert "authbridge.refresh" not in set_cookies(page)

    refreshed = await refresh(client, b, creds.refresh)
    assert refreshed.status_code == 503
    assert refreshed.json() == {"error": "StoreUnavailable"}
    assert "authbridge.refresh" not in set_cookies(refreshed)

    for flow, address in (("signIn", email), ("signUp", new_email())):
        response = await client.post(
            b.origin + "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": flow, "email": address, "password": "correct horse battery"},
            },
            headers={"Origin": b.origin},
        )
        assert response.status_code == 503, (flow, response.text)
        assert response.json() == {"error": "StoreUnavailable"}

    signed_out = await client.post(
        b.origin + "/api/auth/signout",
        headers={"Origin": b.origin, "Cookie": f"authbridge.jwt={creds.jwt}"},
    )
    assert signed_out.status_code == 503


async def test_refresh_throughput_with_two_instances(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    """Measures refreshes/s: 32 sessions, each refreshing its own chain, alternating instances."""
    sessions = [await sign_in(client, cluster.a, new_email(), flow="signUp") for _ in range(32)]
    duration, done, failures = 4.0, 0, 0
    deadline = time.monotonic() + duration

    async def worker(index: int, token: str) -> None:
        nonlocal done, failures
        turn = index
        while time.monotonic() < deadline:
            response = await refresh(client, cluster.instances[turn % 2], token)
            turn += 1
            if response.status_code != 200:
                failures += 1
                return
            token = set_cookies(response)["authbridge.refresh"]
            done += 1

    start = time.monotonic()
    await asyncio.gather(*(worker(i, c.refresh) for i, c in enumerate(sessions)))
    elapsed = time.monotonic() - start
    print(f"\nrefresh throughput, two instances on PostgreSQL: {done / elapsed:.0f} refreshes/s")
    assert failures == 0
    assert done > 0


async def test_a_connection_lost_mid_rotation_leaves_no_partial_write(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    import asyncpg

    creds = await sign_in(client, cluster.a, new_email(), flow="signUp")
    blocker = await asyncpg.connect(cluster.dsn)
    terminated = 0
    try:
        async with blocker.transaction():
            # Rotation locks the token, marks it used and inserts the child, then updates the
            # session: holding the session row stops it just before commit.
            await blocker.execute(
                "SELECT 1 FROM auth_sessions WHERE id = $1 FOR UPDATE", creds.session_id
            )
            pending = asyncio.create_task(refresh(client, cluster.a, creds.refresh))
            deadline = time.monotonic() + 20
            while not pending.done() and time.monotonic() < deadline:
                waiting = await blocker.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = $1"
                    " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
                    cluster.database,
                )
                for row in waiting:
                    await blocker.execute("SELECT pg_terminate_backend($1)", row["pid"])
                    terminated += 1
                await asyncio.sleep(0.05)
            response = await asyncio.wait_for(pending, 5)
    finally:
        await blocker.close()
    assert terminated >= 1
    assert response.status_code == 503, response.text
    assert response.json() == {"error": "StoreUnavailable"}
    assert "authbridge.refresh" not in set_cookies(response)
    rows = await fetch(
        "SELECT id, first_used_at FROM auth_refresh_tokens WHERE session_id = $1",
        cluster.dsn,
        creds.session_id,
    )
    assert [(r["id"], r["first_used_at"]) for r in rows] == [(token_hash(creds.refresh)[0], None)]
    assert (await refresh(client, cluster.a, creds.refresh)).status_code == 200
    print(f"\n{terminated} rotation attempt(s) were cut off for one refresh request")
