"""``authbridge cleanup`` while two engines keep refreshing: expired rows go, live ones stay."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from authbridge import Auth, InvalidCredentials

from .conftest import ENGINE_KEY, PASSWORD, fetch

pytestmark = pytest.mark.pg

CLEANUP_TIMEOUT = 60


async def test_cleanup_during_refresh_traffic_deletes_only_expired_rows(
    fresh_pg_url: str, engine_factory: Any
) -> None:
    past = datetime.now(timezone.utc) - timedelta(days=40)
    old: Auth = await engine_factory(fresh_pg_url, lambda: past, max_sessions_per_user=1000)
    stale_user = await old.sign_up_with_password("stale@example.com", PASSWORD)
    stale = [await old.sessions.create(stale_user.user_id) for _ in range(150)]
    await old.sessions.revoke([s.session_id for s in stale[:40]])
    for i in range(15):
        with pytest.raises(InvalidCredentials):
            await old.sign_in_with_password(f"nobody-{i}@example.com", PASSWORD)

    engines: list[Auth] = [await engine_factory(fresh_pg_url) for _ in range(2)]
    live_user = await engines[0].sign_up_with_password("live@example.com", PASSWORD)
    chains = [
        (await engines[0].sessions.create(live_user.user_id)).refresh_token for _ in range(20)
    ]
    stop = asyncio.Event()
    refreshed = 0

    async def keep_refreshing(index: int) -> None:
        nonlocal refreshed
        turn = index
        while not stop.is_set():
            tokens = await engines[turn % 2].refresh(chains[index])
            chains[index] = tokens.refresh_token
            refreshed += 1
            turn += 1

    workers = [asyncio.create_task(keep_refreshing(i)) for i in range(len(chains))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")}
    env.update(AUTHBRIDGE_DATABASE_URL=fresh_pg_url, AUTHBRIDGE_JWT_PRIVATE_KEYS=ENGINE_KEY)
    try:
        await asyncio.sleep(0.2)
        before = refreshed
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "authbridge.cli",
            "cleanup",
            "--batch-size",
            "10",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), CLEANUP_TIMEOUT)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise
        during = refreshed - before
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        results = await asyncio.gather(*workers, return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert process.returncode == 0, err.decode()
    counts = {
        parts[0]: int(parts[1])
        for parts in (line.split() for line in out.decode().splitlines())
        if len(parts) == 2 and parts[1].isdigit()
    }
    # 150 stale sessions plus the sign-up's, less the 40 signed out (whose revocations expired).
    assert counts == {
        "sessions": 111,
        "refresh_tokens": 111,
        "revocations": 40,
        "rate_limits": 15,
        "anonymous_users": 0,
        "passkey_challenges": 0,
        "totp_enrolments": 0,
        "verification_codes": 0,
    }
    assert during > 0, "no refresh ran while cleanup did"

    dsn = fresh_pg_url.replace("postgresql+asyncpg://", "postgresql://")
    live = await fetch("SELECT id FROM auth_sessions WHERE user_id = $1", dsn, live_user.user_id)
    assert len(live) == 21  # the sign-up's session and the 20 chains
    assert not await fetch(
        "SELECT id FROM auth_sessions WHERE user_id = $1", dsn, stale_user.user_id
    )
    for index, token in enumerate(chains):
        assert (await engines[index % 2].refresh(token)).session_id
