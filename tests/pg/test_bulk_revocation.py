""" "Sign out everywhere" at scale (issue 11, item 5): ending every session of a user, or all but
the current one, or the oldest past the per-user cap, works in SQL whatever the number of
sessions; no statement binds one parameter per session (asyncpg allows 32,767)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text

from authbridge import Auth, TokenError

from .conftest import ENGINE_KEY, PASSWORD

pytestmark = pytest.mark.pg

SESSIONS = 50_000
DEADLINE = 60.0
"""Seconds one bulk revocation may take on a busy two-core machine (it takes a few)."""


async def add_sessions(auth: Auth, user_id: str, count: int) -> None:
    """``count`` live sessions with one refresh token each, inserted in bulk by the database;
    created one millisecond apart, all older than now (once per user)."""
    now = auth.clock()
    async with auth.store.transaction() as conn:
        await conn.execute(
            text(
                "INSERT INTO auth_sessions (id, user_id, created_at, expires_at, last_active_at)"
                " SELECT 'bulk' || lpad(g::text, 8, '0') || substr(md5(random()::text), 1, 8),"
                " :user_id, CAST(:now AS timestamptz) - g * interval '1 millisecond', :ends,"
                " CAST(:now AS timestamptz) - g * interval '1 millisecond'"
                " FROM generate_series(1, :count) AS g"
            ),
            {"user_id": user_id, "now": now, "ends": now + timedelta(days=30), "count": count},
        )
        await conn.execute(
            text(
                "INSERT INTO auth_refresh_tokens (id, session_id, token_hash, expires_at,"
                " created_at) SELECT 't' || s.id, s.id, md5(s.id) || md5(s.id || '.'),"
                " :ends, s.created_at FROM auth_sessions s"
                " WHERE s.user_id = :user_id AND s.id LIKE 'bulk%'"
            ),
            {"user_id": user_id, "ends": now + timedelta(days=30)},
        )


async def counts(auth: Auth, user_id: str) -> dict[str, int]:
    async with auth.store.read() as conn:
        sessions = (
            await conn.execute(
                text("SELECT count(*) FROM auth_sessions WHERE user_id = :u"), {"u": user_id}
            )
        ).scalar_one()
        tokens = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM auth_refresh_tokens t JOIN auth_sessions s"
                    " ON s.id = t.session_id WHERE s.user_id = :u"
                ),
                {"u": user_id},
            )
        ).scalar_one()
        revocations = (
            await conn.execute(text("SELECT count(*) FROM auth_revocations"))
        ).scalar_one()
    return {"sessions": sessions, "tokens": tokens, "revocations": revocations}


async def test_sign_out_everywhere_ends_fifty_thousand_sessions_on_every_instance(
    fresh_pg_url: str, engine_factory: Any
) -> None:
    first: Auth = await engine_factory(fresh_pg_url, max_sessions_per_user=SESSIONS * 2)
    second: Auth = await engine_factory(fresh_pg_url)
    signed_up = await first.sign_up_with_password("many@example.com", PASSWORD)
    await add_sessions(first, signed_up.user_id, SESSIONS)
    assert (await counts(first, signed_up.user_id))["sessions"] == SESSIONS + 1

    start = time.monotonic()
    ended = await first.sign_out_everywhere(signed_up.user_id)
    elapsed = time.monotonic() - start
    print(f"\nsign_out_everywhere ended {ended} sessions in {elapsed:.2f} s")
    assert ended == SESSIONS + 1
    assert elapsed < DEADLINE
    assert await counts(first, signed_up.user_id) == {
        "sessions": 0,
        "tokens": 0,
        "revocations": SESSIONS + 1,
    }
    assert len(first.revocations) == SESSIONS + 1
    assert await second.revocations.poll(second.store) == SESSIONS + 1
    for engine in (first, second):
        with pytest.raises(TokenError) as refused:
            engine.verify_token(signed_up.tokens.access.token)
        assert refused.value.reason == "revoked"


async def test_sign_out_other_sessions_keeps_only_the_current_one_of_fifty_thousand(
    fresh_pg_url: str, engine_factory: Any
) -> None:
    auth: Auth = await engine_factory(fresh_pg_url, max_sessions_per_user=SESSIONS * 2)
    signed_up = await auth.sign_up_with_password("others@example.com", PASSWORD)
    await add_sessions(auth, signed_up.user_id, SESSIONS)
    start = time.monotonic()
    ended = await auth.sign_out_other_sessions(signed_up.user_id, signed_up.session_id)
    assert time.monotonic() - start < DEADLINE
    assert ended == SESSIONS
    assert [s.session_id for s in await auth.list_sessions(signed_up.user_id)] == [
        signed_up.session_id
    ]
    assert auth.verify_token(signed_up.tokens.access.token).session_id == signed_up.session_id


async def test_cli_revoke_user_ends_fifty_thousand_sessions(
    fresh_pg_url: str,
    engine_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from authbridge.cli import main

    auth: Auth = await engine_factory(fresh_pg_url, max_sessions_per_user=SESSIONS * 2)
    signed_up = await auth.sign_up_with_password("cli@example.com", PASSWORD)
    await add_sessions(auth, signed_up.user_id, SESSIONS)
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", fresh_pg_url)
    monkeypatch.setenv("AUTHBRIDGE_JWT_PRIVATE_KEYS", ENGINE_KEY)
    start = time.monotonic()
    code = await asyncio.to_thread(main, ["sessions", "revoke-user", "--email", "cli@example.com"])
    assert time.monotonic() - start < DEADLINE
    assert code == 0
    assert f"revoked {SESSIONS + 1} session(s)" in capsys.readouterr().out
    assert (await counts(auth, signed_up.user_id))["sessions"] == 0
    await auth.poll_revocations()
    assert signed_up.session_id in auth.revocations


async def test_a_sign_in_past_the_cap_ends_the_oldest_of_fifty_thousand_sessions(
    fresh_pg_url: str, engine_factory: Any
) -> None:
    auth: Auth = await engine_factory(fresh_pg_url)
    assert auth.config.max_sessions_per_user == 100
    signed_up = await auth.sign_up_with_password("capped@example.com", PASSWORD)
    await add_sessions(auth, signed_up.user_id, SESSIONS)
    start = time.monotonic()
    newest = await auth.sign_in_with_password("capped@example.com", PASSWORD)
    assert time.monotonic() - start < DEADLINE
    live = await auth.list_sessions(signed_up.user_id)
    assert len(live) == 100
    kept = {s.session_id for s in live}
    assert newest.session_id in kept
    # The sign-up session is the newest of the rest (bulk sessions are older): it stays.
    assert signed_up.session_id in kept
    created = sorted(s.created_at for s in live)
    assert created[0] > datetime.now(timezone.utc) - timedelta(days=1)
    assert (await counts(auth, signed_up.user_id))["revocations"] == SESSIONS + 2 - 100
