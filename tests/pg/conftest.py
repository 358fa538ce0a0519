"""Fixtures for the PostgreSQL scale-out suite: a fresh database with the migrations applied, two
real uvicorn processes sharing it and one set of keys (instance B reaches the database through a
TCP proxy the tests can kill), and HTTP helpers.

Every process binds 127.0.0.1 on a free port and is killed at teardown; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from authbridge.tokens import generate_private_key_pem
from tests.toolkit.databases import (
    PG_PORT,
    fresh_pg_database,
    pg_database_url,
    pg_dsn,
    sqlite_url,
)
from tests.toolkit.engines import FAST_PASSWORDS, signing_key
from tests.toolkit.servers import UvicornProcess, free_port

HERE = Path(__file__).parent
PASSWORD = "correct horse battery"


async def fetch(sql: str, dsn: str, *args: Any) -> list[Any]:
    """Rows of one query (plain asyncpg: no authbridge code involved in checking results)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def _wait_for_line(process: subprocess.Popen[str], expected: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if expected in line:
            return
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {expected!r}")
    raise RuntimeError(f"no {expected!r} within {timeout} s")


class Proxy:
    """``tcp_proxy.py`` in a child process: start, kill (database unreachable), stall."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self._process: subprocess.Popen[str] | None = None

    def start(self, *, stall: bool = False) -> None:
        self.kill()
        args = [sys.executable, str(HERE / "tcp_proxy.py"), str(self.port), str(self.target_port)]
        process = subprocess.Popen(
            [*args, *(["--stall"] if stall else [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._process = process
        _wait_for_line(process, "ready", 10)

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=5)
            assert self._process.stdout is not None
            self._process.stdout.close()
            self._process = None


class Instance(UvicornProcess):
    """One uvicorn process serving ``multi_instance_app`` (or ``app``) on ``database_url``; a
    failed lifespan startup stops it (``--lifespan on``)."""

    def __init__(
        self,
        name: str,
        database_url: str,
        env: dict[str, str],
        log_path: Path,
        app: str = "multi_instance_app:app",
        app_dir: Path = HERE,
    ) -> None:
        env = {**env, "AUTHBRIDGE_DATABASE_URL": database_url}
        super().__init__(app, log_path, env, app_dir=app_dir, args=["--lifespan", "on"], name=name)


@dataclass
class Cluster:
    """Two instances on one database; B reaches it through ``proxy``, and so does C, a third
    instance whose driver has connect / statement timeouts. D runs with NOTIFY disabled
    (``AUTHBRIDGE_REVOCATION_NOTIFY=false``): it learns of revocations by polling alone."""

    a: Instance
    b: Instance
    c: Instance
    d: Instance
    proxy: Proxy
    database: str
    dsn: str
    """Plain ``postgresql://`` DSN of the database, for checks with asyncpg."""
    instances: list[Instance] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.instances = [self.a, self.b]


@pytest.fixture(scope="session")
def cluster(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two servers on a fresh, migrated database with the same AUTHBRIDGE_JWT_PRIVATE_KEYS.

    Depends on ``pg_database`` for its skip / fail-in-CI behaviour."""
    from authbridge.migrations import upgrade
    from authbridge.store import Store

    async def migrate(url: str) -> None:
        store = Store(url)
        try:
            async with store.transaction() as conn:
                await conn.run_sync(upgrade)
        finally:
            await store.close()

    logs = tmp_path_factory.mktemp("servers")
    proxy = Proxy(PG_PORT)
    env = {
        "AUTHBRIDGE_JWT_PRIVATE_KEYS": generate_private_key_pem("ES256"),
        "AUTHBRIDGE_SITE_URL": "http://127.0.0.1",
        # The suite signs up hundreds of users from one client address.
        "AUTHBRIDGE_SIGN_UPS_PER_IP": "100000",
    }
    with fresh_pg_database("authbridge_pg") as name:
        url, proxied = pg_database_url(name), pg_database_url(name, port=proxy.port)
        a = Instance("A", url, env, logs / "a.log")
        b = Instance("B", proxied, env, logs / "b.log")
        c = Instance("C", proxied, {**env, "PG_TEST_DRIVER_TIMEOUT": "3"}, logs / "c.log")
        d = Instance("D", url, {**env, "AUTHBRIDGE_REVOCATION_NOTIFY": "false"}, logs / "d.log")
        try:
            asyncio.run(migrate(url))
            proxy.start()
            for instance in (a, b, c, d):
                instance.start()
            yield Cluster(a, b, c, d, proxy, name, pg_dsn(name))
        finally:
            for instance in (a, b, c, d):
                instance.stop()
            proxy.kill()
    for instance in (a, b, c, d):
        assert "Exception in ASGI application" not in instance.log(), instance.log()


# -- HTTP helpers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    user_id: str
    session_id: str
    jwt: str
    refresh: str


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Cookies a response sets (name → value; cleared cookies map to ``""``)."""
    cookies: dict[str, str] = {}
    for header in response.headers.get_list("set-cookie"):
        pair = header.split(";", 1)[0]
        name, _, value = pair.partition("=")
        cookies[name.strip()] = value.strip()
    return cookies


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client without a cookie jar: every test sends exactly the cookies it means to."""

    async def forget_cookies(response: httpx.Response) -> None:
        http.cookies.clear()

    http = httpx.AsyncClient(
        timeout=httpx.Timeout(30.0), event_hooks={"response": [forget_cookies]}
    )
    async with http:
        yield http


async def sign_in(
    client: httpx.AsyncClient, instance: Instance, email: str, *, flow: str = "signIn"
) -> Credentials:
    """Sign in (or up) with the JSON endpoint; returns the new session's tokens."""
    response = await client.post(
        instance.origin + "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": flow, "email": email, "password": PASSWORD},
        },
        headers={"Origin": instance.origin},
    )
    assert response.status_code == 200, response.text
    cookies = set_cookies(response)
    # Plain http://127.0.0.1 is local development: no __Host- prefix, no Secure.
    assert not any(name.startswith("__Host-") for name in cookies), cookies
    body = response.json()
    return Credentials(
        body["userId"], body["sessionId"], cookies["authbridge.jwt"], cookies["authbridge.refresh"]
    )


def new_email() -> str:
    return f"user-{secrets.token_hex(6)}@example.com"


def token_hash(refresh_token: str) -> tuple[str, str]:
    """``(token id, sha256 of the secret)`` of a refresh token."""
    token_id, secret = refresh_token.split(".", 1)
    return token_id, hashlib.sha256(secret.encode()).hexdigest()


# -- in-process engines --------------------------------------------------------------------------


@pytest.fixture
def fresh_pg_url(pg_database: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (dropped afterwards)."""
    with fresh_pg_database("authbridge_pg") as name:
        yield pg_database_url(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of every backend."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return str(request.getfixturevalue("fresh_pg_url"))


ENGINE_KEY = signing_key()


@pytest.fixture
async def engine_factory() -> AsyncIterator[Any]:
    """``await engine_factory(url, clock=..., **config_fields)`` → an opened ``Auth`` with tables
    created and cheap hashing; all closed at teardown."""
    from authbridge import Auth, AuthConfig

    made: list[Auth] = []

    async def make(url: str, clock: Any = None, **fields: Any) -> Auth:
        config = AuthConfig(
            database_url=url,
            jwt_private_keys=(ENGINE_KEY,),
            password=FAST_PASSWORDS,
            **fields,
        )
        kwargs: dict[str, Any] = {"create_tables": True}
        if clock is not None:
            kwargs["clock"] = clock
        auth = Auth(config, **kwargs)
        await auth.open()
        made.append(auth)
        return auth

    yield make
    for auth in made:
        await auth.close()
