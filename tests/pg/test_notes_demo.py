"""The notes demo (``examples/notes/app.py``) as two server processes on one PostgreSQL
database: a session started on one is known to the other, and sign-out reaches it."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from authbridge.tokens import generate_private_key_pem

from .conftest import PG_PORT, Credentials, Instance, admin, free_port, new_email, sign_in

pytestmark = pytest.mark.pg

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "notes" / "app.py"


@pytest.fixture(scope="module")
def demo(
    pg_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Instance, Instance]]:
    """Two demo instances with the same keys on a fresh database. They start one after the
    other: the demo creates its tables on startup."""
    if not DEMO.exists():
        pytest.skip("examples/notes/app.py is not there")
    name = f"authbridge_demo_{secrets.token_hex(4)}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{PG_PORT}/{name}"
    env = {
        "AUTHBRIDGE_JWT_PRIVATE_KEYS": generate_private_key_pem("ES256"),
        "AUTHBRIDGE_SITE_URL": "http://127.0.0.1",
    }
    logs = tmp_path_factory.mktemp("demo")
    instances = tuple(
        Instance(
            label, free_port(), url, env, logs / f"{label}.log", "examples.notes.app:app", ROOT
        )
        for label in ("A", "B")
    )
    try:
        for instance in instances:
            instance.start()
        yield instances[0], instances[1]
    finally:
        for instance in instances:
            instance.stop()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    for instance in instances:
        assert "Exception in ASGI application" not in instance.log(), instance.log()


async def test_demo_instances_share_sessions_and_sign_out(
    demo: tuple[Instance, Instance],
) -> None:
    a, b = demo
    email = new_email()
    async with httpx.AsyncClient(timeout=30) as client:
        creds: Credentials = await sign_in(client, a, email, flow="signUp")
        client.cookies.clear()
        me = await client.get(
            b.origin + "/api/whoami", headers={"Cookie": f"authbridge.jwt={creds.jwt}"}
        )
        assert me.status_code == 200
        assert me.json() == {"userId": creds.user_id, "sessionId": creds.session_id, "email": email}

        bearer = {"Authorization": f"Bearer {creds.jwt}"}
        assert (await client.get(a.origin + "/api/whoami", headers=bearer)).status_code == 200
        signed_out = await client.post(
            b.origin + "/api/auth/signout",
            headers={"Origin": b.origin, "Cookie": f"authbridge.jwt={creds.jwt}"},
        )
        assert signed_out.status_code == 200
        client.cookies.clear()
        start = time.monotonic()
        while time.monotonic() - start < 3:
            status = (await client.get(a.origin + "/api/whoami", headers=bearer)).status_code
            if status == 401:
                break
            await asyncio.sleep(0.05)
        assert status == 401
        assert time.monotonic() - start <= 2.0
