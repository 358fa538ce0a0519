"""Several instances starting at once on one PostgreSQL database."""

from __future__ import annotations

import asyncio

import pytest

from authbridge import Auth, AuthConfig

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
