"""Fixtures for the ``authbridge`` command tests: the environment it reads, databases to point it
at (SQLite, and fresh PostgreSQL databases whose URL carries a password that must never be
printed), and a way to run it as a real process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.toolkit.databases import fresh_pg_database, pg_database_url, sqlite_url
from tests.toolkit.engines import signing_key

DB_PASSWORD = "cli-Secret-pw-7f3a"
"""Put into every PostgreSQL URL (trust authentication ignores it); must never be printed."""
CLI_TIMEOUT = 60


@pytest.fixture
def pg_url_factory(pg_database: str) -> Iterator[Callable[[], str]]:
    """Make fresh, empty PostgreSQL databases (dropped afterwards); URLs carry a password.

    Depends on ``pg_database`` for its skip / fail-in-CI behaviour."""
    with contextlib.ExitStack() as stack:

        def make() -> str:
            name = stack.enter_context(fresh_pg_database("authbridge_cli"))
            return pg_database_url(name, password=DB_PASSWORD)

        yield make


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of every backend."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path, "cli")
    factory: Callable[[], str] = request.getfixturevalue("pg_url_factory")
    return factory()


@pytest.fixture(scope="session")
def private_key() -> str:
    """One ES256 key for the whole run."""
    return signing_key()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, private_key: str) -> dict[str, str]:
    """The ``AUTHBRIDGE_*`` variables of a deployment on ``database_url``, set in this process
    (for ``main([...])``) and returned (for subprocesses)."""
    for name in list(os.environ):
        if name.startswith("AUTHBRIDGE_"):
            monkeypatch.delenv(name)
    values = {
        "AUTHBRIDGE_DATABASE_URL": database_url,
        "AUTHBRIDGE_JWT_PRIVATE_KEYS": private_key,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run_cli(
    args: list[str], env: dict[str, str], *, script: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``authbridge`` in a child process (``python -m authbridge.cli``, or the installed
    console script with ``script=True``)."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")}
    child_env.update(env)
    if script:
        command = [str(Path(sys.executable).parent / "authbridge"), *args]
    else:
        command = [sys.executable, "-m", "authbridge.cli", *args]
    return subprocess.run(
        command,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
