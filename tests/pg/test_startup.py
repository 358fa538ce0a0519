"""Several instances starting at once on one PostgreSQL database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from authbridge import Auth, AuthConfig
from tests.toolkit.servers import free_port

from .conftest import ENGINE_KEY

pytestmark = pytest.mark.pg


async def test_two_instances_creating_tables_at_once_both_open(fresh_pg_url: str) -> None:
    config = AuthConfig(database_url=fresh_pg_url, jwt_private_keys=(ENGINE_KEY,))
    engines = [Auth(config, create_tables=True) for _ in range(3)]
    try:
        await asyncio.gather(*(engine.open() for engine in engines))
    finally:
        for engine in engines:
            await engine.close()


@pytest.mark.parametrize("lifespan", ["auto", "on"])
def test_uvicorn_on_postgresql_without_keys_exits_non_zero_with_the_reason(
    pg_database: str, lifespan: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")}
    env["AUTHBRIDGE_DATABASE_URL"] = pg_database
    port = free_port()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "multi_instance_app:app",
            "--app-dir",
            str(Path(__file__).parent),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            lifespan,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "AUTHBRIDGE_JWT_PRIVATE_KEYS is required with a server database" in done.stderr
    assert "Application startup failed" in done.stderr
    assert "Application startup complete" not in done.stderr
