"""The shipped Alembic migrations produce exactly the schema of ``build_tables()``, online and as
the offline SQL script (``authbridge db upgrade --sql``, ``alembic upgrade head --sql``)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url

from authbridge import migrations
from authbridge.cli import main
from authbridge.store import Store, build_tables
from tests.toolkit.databases import pg_admin, pg_dsn
from tests.toolkit.servers import free_port

from .conftest import run_cli

REVISIONS = [
    script.revision
    for script in reversed(
        list(ScriptDirectory.from_config(migrations.alembic_config()).walk_revisions())
    )
]
"""Every shipped revision, oldest first."""


def _schema(conn: Connection) -> dict[str, Any]:
    """Tables, columns (type, nullability), primary keys, indexes by name, unique constraints
    and foreign keys, as reflected from the database."""
    inspector = inspect(conn)
    schema: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        if table == migrations.VERSION_TABLE:
            continue
        schema[table] = {
            "columns": {
                c["name"]: (str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            },
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(
                (
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                    (f.get("options") or {}).get("ondelete"),
                )
                for f in inspector.get_foreign_keys(table)
            ),
        }
    return schema


def _differences(conn: Connection) -> list[Any]:
    """What Alembic's autogenerate would change to reach ``build_tables()`` (nothing, we hope)."""
    context = MigrationContext.configure(
        conn, opts={"version_table": migrations.VERSION_TABLE, "compare_type": True}
    )
    return list(compare_metadata(context, build_tables().metadata))


async def _migrated_and_created(
    migrated_url: str, created_url: str
) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    migrated, created = Store(migrated_url), Store(created_url)
    try:
        async with migrated.transaction() as conn:
            await conn.run_sync(migrations.upgrade)
        async with created.transaction() as conn:
            await conn.run_sync(created.tables.metadata.create_all)
        async with migrated.read() as conn:
            migrated_schema = await conn.run_sync(_schema)
            differences = await conn.run_sync(_differences)
        async with created.read() as conn:
            created_schema = await conn.run_sync(_schema)
    finally:
        await migrated.close()
        await created.close()
    return migrated_schema, created_schema, differences


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Two empty databases of the same backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/a.db", f"sqlite+aiosqlite:///{tmp_path}/b.db"
    factory: Callable[[], str] = request.getfixturevalue("pg_url_factory")
    return factory(), factory()


def test_migrations_produce_the_schema_of_build_tables(two_databases: tuple[str, str]) -> None:
    migrated, created, differences = asyncio.run(_migrated_and_created(*two_databases))
    assert differences == []
    assert set(migrated) == {
        "users",
        "auth_accounts",
        "auth_sessions",
        "auth_refresh_tokens",
        "auth_rate_limits",
        "auth_revocations",
        "auth_keys",
        "auth_verifiers",
        "auth_provider_tokens",
        "auth_verification_codes",
        "auth_totp",
        "auth_recovery_codes",
        "auth_passkeys",
        "auth_webauthn_challenges",
    }
    for table in created:
        assert migrated[table] == created[table], table
    assert migrated == created


def test_migrations_downgrade_to_an_empty_database(two_databases: tuple[str, str]) -> None:
    async def run() -> list[str]:
        store = Store(two_databases[0])
        try:
            async with store.transaction() as conn:
                await conn.run_sync(migrations.upgrade)
                await conn.run_sync(
                    lambda sync: command.downgrade(migrations.alembic_config(sync), "base")
                )
            async with store.read() as conn:
                return await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        finally:
            await store.close()

    assert set(asyncio.run(run())) <= {migrations.VERSION_TABLE}


def test_upgrading_from_the_baseline_keeps_revocations_in_force(
    two_databases: tuple[str, str],
) -> None:
    """v0002 rebuilds auth_revocations with a sequence: the rows recorded before stay, and the
    feed goes on numbering after them."""
    from sqlalchemy import text

    async def run() -> list[Any]:
        store = Store(two_databases[0])
        try:
            async with store.transaction() as conn:
                await conn.run_sync(lambda sync: migrations.upgrade(sync, "0001"))
                for i, minutes in enumerate((3, 1, 2)):
                    await conn.execute(
                        text(
                            "INSERT INTO auth_revocations (session_id, revoked_at, expires_at)"
                            " VALUES (:sid, :at, :until)"
                        ),
                        {
                            "sid": f"session-{i}",
                            "at": datetime(2030, 1, 1, 0, minutes, tzinfo=timezone.utc),
                            "until": datetime(2030, 1, 1, 2, tzinfo=timezone.utc),
                        },
                    )
            async with store.transaction() as conn:
                await conn.run_sync(migrations.upgrade)
                await conn.execute(
                    text(
                        "INSERT INTO auth_revocations (session_id, revoked_at, expires_at)"
                        " VALUES ('session-new', :at, :at)"
                    ),
                    {"at": datetime(2030, 1, 1, tzinfo=timezone.utc)},
                )
            async with store.read() as conn:
                rows = await conn.execute(
                    text("SELECT seq, session_id FROM auth_revocations ORDER BY seq")
                )
                return [tuple(r) for r in rows]
        finally:
            await store.close()

    rows = asyncio.run(run())
    # Oldest first (by the old revoked_at), then the new row after them all.
    assert [sid for _, sid in rows] == ["session-1", "session-2", "session-0", "session-new"]
    assert [seq for seq, _ in rows] == sorted({seq for seq, _ in rows})


def test_the_baseline_is_the_one_base_and_the_chain_has_one_head() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations.alembic_config())
    assert list(script.get_bases()) == [migrations.BASELINE_REVISION]
    assert list(script.get_heads()) == [migrations.head_revision()]


def test_migrations_ship_inside_the_package() -> None:
    package = Path(migrations.__file__).parent
    assert (package / "env.py").is_file()
    assert (package / "script.py.mako").is_file()
    assert any((package / "versions").glob("v0001_*.py"))


def test_an_applications_own_alembic_can_run_them(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = authbridge:migrations\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")}
    env["AUTHBRIDGE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/app.db"
    for args in (["upgrade", "head"], ["current"]):
        done = subprocess.run(
            [sys.executable, "-m", "alembic", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert f"{migrations.head_revision()} (head)" in done.stdout


def test_the_url_in_an_applications_alembic_ini_wins_over_the_environment(
    tmp_path: Path,
) -> None:
    import os
    import subprocess
    import sys

    ini_db, env_db = tmp_path / "from-ini.db", tmp_path / "from-env.db"
    (tmp_path / "alembic.ini").write_text(
        "[alembic]\nscript_location = authbridge:migrations\n"
        f"sqlalchemy.url = sqlite+aiosqlite:///{ini_db}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")}
    env["AUTHBRIDGE_DATABASE_URL"] = f"sqlite+aiosqlite:///{env_db}"

    def alembic(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "alembic", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done

    alembic("upgrade", "head")
    with contextlib.closing(sqlite3.connect(ini_db)) as db:
        [(version,)] = db.execute(f"SELECT version_num FROM {migrations.VERSION_TABLE}")
    assert version == migrations.head_revision()
    assert not env_db.exists()
    # Offline too: the script is written for the ini's kind of database.
    (tmp_path / "alembic.ini").write_text(
        "[alembic]\nscript_location = authbridge:migrations\n"
        "sqlalchemy.url = postgresql+asyncpg://app@db.invalid/app\n"
    )
    assert "GENERATED BY DEFAULT AS IDENTITY" in alembic("upgrade", "head", "--sql").stdout


# -- offline: the SQL script ---------------------------------------------------------------------


def _upgrade_online(url: str, revision: str = "head") -> None:
    async def run() -> None:
        store = Store(url)
        try:
            async with store.transaction() as conn:
                await conn.run_sync(lambda sync: migrations.upgrade(sync, revision))
        finally:
            await store.close()

    asyncio.run(run())


def _apply_script(url: str, script: str) -> None:
    """Run the script as a DBA would, with the database's own client library (no SQLAlchemy,
    no authbridge code)."""
    database = make_url(url).database
    assert database is not None
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(database)) as db:
            db.executescript(script)
    else:
        asyncio.run(pg_admin(script, pg_dsn(database)))


def _schema_of(url: str) -> tuple[dict[str, Any], list[Any], str | None]:
    """The reflected schema, the differences from ``build_tables()`` and the revision."""

    async def read() -> tuple[dict[str, Any], list[Any], str | None]:
        store = Store(url)
        try:
            async with store.read() as conn:
                return (
                    await conn.run_sync(_schema),
                    await conn.run_sync(_differences),
                    await conn.run_sync(migrations.current_revision),
                )
        finally:
            await store.close()

    return asyncio.run(read())


def test_the_offline_script_builds_what_the_online_upgrade_builds(
    two_databases: tuple[str, str], private_key: str
) -> None:
    online, offline = two_databases
    env = {"AUTHBRIDGE_DATABASE_URL": offline, "AUTHBRIDGE_JWT_PRIVATE_KEYS": private_key}
    done = run_cli(["db", "upgrade", "--sql"], env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    script = done.stdout
    assert script.startswith("BEGIN;") and script.rstrip().endswith("COMMIT;")
    for before, after in zip(["", *REVISIONS], REVISIONS, strict=False):
        assert f"-- Running upgrade {before} -> {after}\n" in script
    schema, _, revision = _schema_of(offline)
    assert (schema, revision) == ({}, None)  # writing the script ran nothing
    _apply_script(offline, script)
    _upgrade_online(online)
    schema, differences, revision = _schema_of(offline)
    assert differences == []
    assert revision == migrations.head_revision()
    assert schema == _schema_of(online)[0]


@pytest.mark.parametrize("start", REVISIONS[:-1])
def test_the_offline_script_continues_from_every_revision(
    two_databases: tuple[str, str],
    start: str,
    private_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    online, offline = two_databases
    _upgrade_online(offline, start)
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", offline)
    monkeypatch.setenv("AUTHBRIDGE_JWT_PRIVATE_KEYS", private_key)
    assert main(["db", "upgrade", "--sql", "--from", start]) == 0
    script = capsys.readouterr().out
    assert f"-- Running upgrade {start} -> " in script
    assert f"-> {start}\n" not in script  # what the database has is not run again
    _apply_script(offline, script)
    _upgrade_online(online)
    schema, differences, revision = _schema_of(offline)
    assert (differences, revision) == ([], migrations.head_revision())
    assert schema == _schema_of(online)[0]


@pytest.mark.parametrize(
    ("url", "spelling"),
    [
        # Neither database exists nor could: the script is written without connecting.
        ("sqlite+aiosqlite:///{tmp}/no-such-directory/app.db", "AUTOINCREMENT"),
        ("postgresql+asyncpg://app:pw@127.0.0.1:{port}/app", "GENERATED BY DEFAULT AS IDENTITY"),
    ],
    ids=["sqlite", "postgresql"],
)
@pytest.mark.parametrize("tool", ["authbridge", "alembic"])
def test_the_offline_script_is_written_without_a_database(
    tmp_path: Path, private_key: str, url: str, spelling: str, tool: str
) -> None:
    import os
    import subprocess
    import sys

    url = url.format(tmp=tmp_path, port=free_port())
    env = {"AUTHBRIDGE_DATABASE_URL": url, "AUTHBRIDGE_JWT_PRIVATE_KEYS": private_key}
    if tool == "authbridge":
        done = run_cli(["db", "upgrade", "--sql"], env)
    else:
        # An application's own Alembic setup, with the package's env.py (it used to crash in
        # 0002, which looked at the database).
        ini = "[alembic]\nscript_location = authbridge:migrations\n"
        (tmp_path / "alembic.ini").write_text(ini)
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")}
        done = subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head", "--sql"],
            cwd=tmp_path,
            env={**child_env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    script = done.stdout
    assert f"-- Running upgrade {REVISIONS[-2]} -> {REVISIONS[-1]}" in script
    assert spelling in script
    assert "pw@" not in script
    recorded = f"INSERT INTO {migrations.VERSION_TABLE} (version_num) VALUES ('{REVISIONS[0]}')"
    assert recorded in script
    assert not (tmp_path / "no-such-directory").exists()


def test_upgrade_sql_writes_the_steps_between_two_revisions() -> None:
    script = migrations.upgrade_sql("postgresql+asyncpg://app@db/app", "0005", start="0003")
    steps = [line for line in script.splitlines() if line.startswith("-- Running upgrade")]
    assert steps == ["-- Running upgrade 0003 -> 0004", "-- Running upgrade 0004 -> 0005"]
    assert "CREATE TABLE auth_verification_codes" in script
    assert "auth_totp" not in script
