"""The notes demo (``examples/notes/app.py``) as two server processes on one PostgreSQL
database: a session started on one is known to the other, and sign-out reaches it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from authbridge.tokens import generate_private_key_pem
from tests.toolkit.databases import fresh_pg_database, pg_database_url
from tests.toolkit.servers import ROOT

from .conftest import Credentials, Instance, new_email, sign_in

pytestmark = pytest.mark.pg

DEMO = ROOT / "examples" / "notes" / "app.py"
DEMO_APP = "examples.notes.app:app"


@pytest.fixture(scope="module")
def demo(
    pg_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Instance, Instance]]:
    """Two demo instances with the same keys on a fresh database. They start one after the
    other: the demo creates its tables on startup."""
    if not DEMO.exists():
        pytest.skip("examples/notes/app.py is not there")
    env = {
        "AUTHBRIDGE_JWT_PRIVATE_KEYS": generate_private_key_pem("ES256"),
        "AUTHBRIDGE_SITE_URL": "http://127.0.0.1",
    }
    logs = tmp_path_factory.mktemp("demo")
    with fresh_pg_database("authbridge_demo") as name:
        instances = tuple(
            Instance(label, pg_database_url(name), env, logs / f"{label}.log", DEMO_APP, ROOT)
            for label in ("A", "B")
        )
        try:
            for instance in instances:
                instance.start()
            yield instances[0], instances[1]
        finally:
            for instance in instances:
                instance.stop()
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
