"""The shipped Alembic migrations produce exactly the schema of ``build_tables()``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from authbridge import migrations
from authbridge.store import Store, build_tables


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

            def diff(sync: Connection) -> list[Any]:
                context = MigrationContext.configure(
                    sync, opts={"version_table": migrations.VERSION_TABLE, "compare_type": True}
                )
                return list(compare_metadata(context, build_tables().metadata))

            differences = await conn.run_sync(diff)
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
