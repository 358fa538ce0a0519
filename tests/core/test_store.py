"""The store: app-defined user columns, UTC timestamps, SQLite write serialisation and the
development keys persisted in SQLite."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, select, text, update

from authbridge import Auth, AuthConfig, ConfigError
from authbridge.ratelimit import Bucket
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import FAST_PASSWORDS, AuthFactory, signing_key
from tests.toolkit.sql import record_statements

from .conftest import all_rows

PASSWORD = "correct horse battery"


def app_columns() -> list[Column[Any]]:
    return [
        Column("display_name", String(100)),
        Column("plan", String(20), nullable=False, default="free"),
        Column("karma", Integer, server_default=text("0")),
    ]


async def test_app_columns_on_users_show_up_in_user_data(auth_factory: AuthFactory) -> None:
    auth = await auth_factory(auth_kwargs={"user_columns": app_columns()})
    result = await auth.sign_up_with_password("ada@example.com", PASSWORD)
    user = await auth.get_user(result.user_id)
    assert user is not None
    assert user.data["display_name"] is None
    assert user.data["plan"] == "free"
    assert user.data["karma"] == 0
    users = auth.store.tables.users
    async with auth.store.transaction() as conn:
        await conn.execute(
            update(users).where(users.c.id == result.user_id).values(display_name="Ada L.")
        )
    user = await auth.get_user(result.user_id)
    assert user is not None and user.data["display_name"] == "Ada L."
    assert user.data["email"] == user.email == "ada@example.com"


async def test_one_column_list_can_serve_several_engines(auth_factory: AuthFactory) -> None:
    columns = app_columns()
    first = await auth_factory(auth_kwargs={"user_columns": columns})
    second = await auth_factory(auth_kwargs={"user_columns": columns})
    result = await first.sign_up_with_password("ada@example.com", PASSWORD)
    user = await second.get_user(result.user_id)
    assert user is not None and user.data["plan"] == "free"


@pytest.mark.parametrize(
    "column",
    [Column("required", String(10), nullable=False), Column("pk", Integer, primary_key=True)],
    ids=["not-null-without-default", "primary-key"],
)
def test_user_columns_that_would_break_sign_up_are_refused(column: Column[Any]) -> None:
    with pytest.raises(ConfigError, match=str(column.name)):
        Auth(AuthConfig(), user_columns=[column])


async def test_auth_tables_can_live_on_the_apps_metadata(auth_factory: AuthFactory) -> None:
    metadata = MetaData()
    notes = Table(
        "notes",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("user_id", String(32)),
        Column("pinned", Boolean),
    )
    auth = await auth_factory(auth_kwargs={"metadata": metadata})
    assert auth.store.tables.users.metadata is metadata
    async with auth.store.transaction() as conn:
        await conn.execute(notes.insert().values(id=1, user_id="u", pinned=True))
    assert await all_rows(auth, "notes") == [{"id": 1, "user_id": "u", "pinned": True}]


async def test_timestamps_come_back_timezone_aware_utc(auth: Auth, clock: FakeClock) -> None:
    result = await auth.sign_up_with_password("ada@example.com", PASSWORD)
    for table in ("users", "auth_sessions", "auth_refresh_tokens"):
        for row in await all_rows(auth, table):
            assert row["created_at"] == clock()
            assert row["created_at"].tzinfo is not None
            assert row["created_at"].utcoffset().total_seconds() == 0
    user = await auth.get_user(result.user_id)
    assert user is not None and user.created_at == datetime(2030, 1, 1, tzinfo=timezone.utc)


async def test_naive_datetimes_are_refused(auth: Auth) -> None:
    with pytest.raises(Exception, match="naive"):
        async with auth.store.transaction() as conn:
            await conn.execute(
                auth.store.tables.revocations.insert().values(
                    session_id="x", revoked_at=datetime(2030, 1, 1), expires_at=datetime(2030, 1, 2)
                )
            )


# -- SQLite -----------------------------------------------------------------------------------


async def test_sqlite_uses_wal_and_foreign_keys(sqlite_url: str, clock: FakeClock) -> None:
    auth = Auth(
        AuthConfig(database_url=sqlite_url, password=FAST_PASSWORDS),
        clock=clock,
        create_tables=True,
    )
    async with auth, auth.store.read() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1


async def test_sqlite_write_transactions_begin_immediate(sqlite_url: str, clock: FakeClock) -> None:
    auth = Auth(AuthConfig(database_url=sqlite_url, password=FAST_PASSWORDS), clock=clock)
    async with auth:
        with record_statements(auth) as log:
            async with auth.store.transaction() as conn:
                await conn.execute(select(1))
            async with auth.store.read() as conn:
                await conn.execute(select(1))
    begins = [s.sql for s in log.sent if s.sql.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE", "BEGIN"]


async def test_sqlite_serialises_concurrent_writers_across_engines(
    sqlite_url: str, clock: FakeClock
) -> None:
    """Two engines on one file (two processes, in effect) write concurrently without
    "database is locked": BEGIN IMMEDIATE makes the second wait for the first."""
    engines = [
        Auth(
            AuthConfig(database_url=sqlite_url, password=FAST_PASSWORDS),
            clock=clock,
            create_tables=True,
        )
        for _ in range(2)
    ]
    try:
        for auth in engines:
            await auth.open()
        await asyncio.gather(
            *(engines[i % 2].rate_limiter.consume([Bucket("ip:shared", 1000)]) for i in range(40))
        )
        assert await engines[0].rate_limiter.remaining(Bucket("ip:shared", 1000)) == 960
    finally:
        for auth in engines:
            await auth.close()


def test_sqlite_store_works_from_a_second_event_loop(sqlite_url: str, clock: FakeClock) -> None:
    """The per-process write lock must not stay bound to the first loop that used it."""
    auth = Auth(
        AuthConfig(database_url=sqlite_url, password=FAST_PASSWORDS),
        clock=clock,
        create_tables=True,
    )

    async def contend() -> None:
        await auth.open()
        await asyncio.gather(
            *(auth.rate_limiter.consume([Bucket("ip:loop", 100)]) for _ in range(5))
        )
        await auth.store.close()

    asyncio.run(contend())
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            asyncio.run(contend())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert errors == []
    asyncio.run(auth.close())


async def test_development_keys_are_generated_once_and_shared(
    sqlite_url: str, clock: FakeClock
) -> None:
    config = AuthConfig(database_url=sqlite_url, password=FAST_PASSWORDS)
    async with Auth(config, clock=clock, create_tables=True) as first:
        result = await first.sign_up_with_password("ada@example.com", PASSWORD)
        kid = first.keys.signing_key.kid
    async with Auth(config, clock=clock) as second:
        assert second.keys.signing_key.kid == kid
        assert second.verify_token(result.tokens.access.token).user_id == result.user_id
        [row] = await all_rows(second, "auth_keys")
        assert row["algorithm"] == "ES256"


@pytest.mark.pg
async def test_server_databases_require_configured_keys(pg_url: str, clock: FakeClock) -> None:
    auth = Auth(AuthConfig(database_url=pg_url, password=FAST_PASSWORDS), clock=clock)
    with pytest.raises(ConfigError, match="AUTHBRIDGE_JWT_PRIVATE_KEYS"):
        await auth.open()
    await auth.close()


def test_database_passwords_are_redacted_in_messages(tmp_path: Path) -> None:
    from authbridge.store import redact_url

    assert "hunter2" not in redact_url("postgresql+asyncpg://app:hunter2@db/app")


async def test_in_memory_sqlite_serves_concurrent_reads_and_writes(clock: FakeClock) -> None:
    """In-memory SQLite is one shared connection: reads must queue behind write transactions."""
    auth = Auth(
        AuthConfig(database_url="sqlite+aiosqlite://", password=FAST_PASSWORDS),
        clock=clock,
        create_tables=True,
    )
    async with auth:
        result = await auth.sign_up_with_password("ada@example.com", PASSWORD)
        outcomes = await asyncio.gather(
            *(auth.refresh(result.tokens.refresh_token) for _ in range(10)),
            *(auth.list_sessions(result.user_id) for _ in range(10)),
            *(auth.sign_in_with_password("ada@example.com", PASSWORD) for _ in range(3)),
            return_exceptions=True,
        )
    assert [o for o in outcomes if isinstance(o, BaseException)] == []


async def test_concurrent_opens_open_once(sqlite_url: str, clock: FakeClock) -> None:
    auth = Auth(
        AuthConfig(database_url=sqlite_url, password=FAST_PASSWORDS),
        clock=clock,
        create_tables=True,
    )
    try:
        await asyncio.gather(*(auth.open() for _ in range(10)))
        assert len(await all_rows(auth, "auth_keys")) == 1
    finally:
        await auth.close()


async def test_instances_creating_tables_at_once_all_open(db_url: str, clock: FakeClock) -> None:
    """Several instances starting together on an empty database must not race on CREATE TABLE."""
    config = AuthConfig(
        database_url=db_url, password=FAST_PASSWORDS, jwt_private_keys=(signing_key(),)
    )
    engines = [Auth(config, clock=clock, create_tables=True) for _ in range(3)]
    try:
        await asyncio.gather(*(engine.open() for engine in engines))
        assert (await engines[0].sign_up_with_password("ada@example.com", PASSWORD)).user_id
    finally:
        for engine in engines:
            await engine.close()


async def test_a_hanging_postgresql_server_fails_fast_with_store_unavailable(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default driver timeouts turn a server that accepts but never answers into
    StoreUnavailable (here shortened, to keep the test fast)."""
    import authbridge.store.dialect
    from authbridge import StoreUnavailable

    monkeypatch.setattr(authbridge.store.dialect, "PG_CONNECT_TIMEOUT_S", 0.3)
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    auth = Auth(
        AuthConfig(
            database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/hang",
            password=FAST_PASSWORDS,
            jwt_private_keys=(signing_key(),),
        ),
        clock=clock,
    )
    try:
        await auth.open()  # starts anyway; revocations load later
        started = asyncio.get_running_loop().time()
        with pytest.raises(StoreUnavailable):
            await auth.refresh("A" * 22 + "." + "B" * 43)
        assert asyncio.get_running_loop().time() - started < 3
        assert accepted
    finally:
        await auth.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
