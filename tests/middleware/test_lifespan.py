"""AuthMiddleware is pure ASGI: lifespan opens and closes the engine, apps that ignore lifespan
get a lazily opened engine, and scope types it does not know pass straight through."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette

from authbridge import Auth, AuthMiddleware
from authbridge._asgi import Message, Receive, Scope, Send
from tests.toolkit.clients import ClientFactory, sign_up

from .conftest import BASE, starlette_app


class LifespanDriver:
    """Plays the server's side of the ASGI lifespan protocol."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.to_app: asyncio.Queue[Message] = asyncio.Queue()
        self.from_app: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _receive(self) -> Message:
        return await self.to_app.get()

    async def _send(self, message: Message) -> None:
        await self.from_app.put(message)

    async def startup(self) -> Message:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.get_running_loop().create_task(
            self.app(scope, self._receive, self._send)
        )
        await self.to_app.put({"type": "lifespan.startup"})
        return await asyncio.wait_for(self.from_app.get(), 5)

    async def shutdown(self) -> Message:
        await self.to_app.put({"type": "lifespan.shutdown"})
        message = await asyncio.wait_for(self.from_app.get(), 5)
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)
        return message


@contextlib.asynccontextmanager
async def lifespan_of(app: Any) -> AsyncIterator[LifespanDriver]:
    driver = LifespanDriver(app)
    try:
        yield driver
    finally:
        if driver.task is not None and not driver.task.done():
            driver.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver.task


async def test_lifespan_startup_opens_the_store_before_the_app_starts(
    unopened_auth_factory: Callable[..., Auth],
) -> None:
    auth = unopened_auth_factory()
    opened_when_app_started: list[bool] = []

    @contextlib.asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[None]:
        opened_when_app_started.append(auth.is_open)
        yield

    app = AuthMiddleware(Starlette(lifespan=app_lifespan), auth)
    async with lifespan_of(app) as lifespan:
        assert (await lifespan.startup())["type"] == "lifespan.startup.complete"
        assert opened_when_app_started == [True]
        assert auth.is_open
        assert (await lifespan.shutdown())["type"] == "lifespan.shutdown.complete"
    assert not auth.is_open


async def test_lifespan_starts_the_revocation_poller(
    unopened_auth_factory: Callable[..., Auth], client_factory: ClientFactory
) -> None:
    auth = unopened_auth_factory(revocation_poll_interval=timedelta(milliseconds=20))
    other = unopened_auth_factory()
    app = AuthMiddleware(starlette_app(), auth)
    async with lifespan_of(app) as lifespan:
        await lifespan.startup()
        client = client_factory(app)
        body = await sign_up(client)
        token = (await client.post("/api/auth/token")).json()["token"]
        await other.open()
        # Another instance signs the session out; only the poller can tell this one.
        await other.sign_out(body["sessionId"])
        assert body["sessionId"] not in auth.revocations
        for _ in range(250):
            if body["sessionId"] in auth.revocations:
                break
            await asyncio.sleep(0.02)
        bearer = client_factory(app)
        seen = (await bearer.get("/whoami", headers={"authorization": f"Bearer {token}"})).json()
        assert seen["userId"] is None
        assert seen["error"] == "revoked"
        await lifespan.shutdown()


async def test_a_lifespan_app_that_fails_startup_still_reports_failure(
    unopened_auth_factory: Callable[..., Auth],
) -> None:
    @contextlib.asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("app cannot start")
        yield  # pragma: no cover

    app = AuthMiddleware(Starlette(lifespan=broken), unopened_auth_factory())
    async with lifespan_of(app) as lifespan:
        assert (await lifespan.startup())["type"] == "lifespan.startup.failed"


async def test_an_app_that_ignores_lifespan_gets_the_engine_opened_at_startup_anyway(
    unopened_auth_factory: Callable[..., Auth], client_factory: ClientFactory
) -> None:
    seen: list[Any] = []

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # ignores lifespan entirely
        seen.append(scope["auth"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    auth = unopened_auth_factory()
    app = AuthMiddleware(raw, auth)
    async with lifespan_of(app) as lifespan:
        assert (await lifespan.startup())["type"] == "lifespan.startup.complete"
        assert auth.is_open
        client = client_factory(app)
        await sign_up(client)
        assert (await client.get("/")).status_code == 204
        assert seen[-1].user_id is not None
        assert (await lifespan.shutdown())["type"] == "lifespan.shutdown.complete"
    assert not auth.is_open


async def test_an_app_that_refuses_lifespan_still_gets_startup_errors_reported(
    unopened_auth_factory: Callable[..., Auth],
) -> None:
    async def django_like(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError("only http")

    auth = unopened_auth_factory(
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/x", jwt_private_keys=()
    )
    async with lifespan_of(AuthMiddleware(django_like, auth)) as lifespan:
        failed = await lifespan.startup()
    assert failed["type"] == "lifespan.startup.failed"
    assert "AUTHBRIDGE_JWT_PRIVATE_KEYS is required" in failed["message"]


async def test_the_first_request_opens_the_engine_when_the_server_runs_no_lifespan(
    unopened_auth_factory: Callable[..., Auth], client_factory: ClientFactory
) -> None:
    auth = unopened_auth_factory()
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    assert (await client.get("/whoami")).status_code == 200
    assert auth.is_open


async def test_a_startup_error_fails_startup_with_the_message_and_the_app_startup_still_runs(
    unopened_auth_factory: Callable[..., Auth],
) -> None:
    ran: list[str] = []

    @contextlib.asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[None]:
        ran.append("startup")
        yield

    auth = unopened_auth_factory(
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/x", jwt_private_keys=()
    )
    async with lifespan_of(AuthMiddleware(Starlette(lifespan=app_lifespan), auth)) as lifespan:
        failed = await lifespan.startup()
    assert failed["type"] == "lifespan.startup.failed"
    assert failed["message"].startswith("authbridge cannot start: AUTHBRIDGE_JWT_PRIVATE_KEYS")
    assert ran == ["startup"]
    assert not auth.is_open


async def test_concurrent_first_requests_open_the_store_once(
    unopened_auth_factory: Callable[..., Auth], client_factory: ClientFactory
) -> None:
    auth = unopened_auth_factory()
    client = client_factory(AuthMiddleware(starlette_app(), auth))
    responses = await asyncio.gather(*(client.get("/whoami") for _ in range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert auth.is_open


async def test_unknown_scope_types_pass_through_untouched(auth: Auth) -> None:
    received: list[Scope] = []

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(scope)

    async def receive() -> Message:
        raise AssertionError("not called")

    async def send(message: Message) -> None:
        raise AssertionError("not called")

    scope: Scope = {"type": "custom.protocol", "path": "/whoami"}
    await AuthMiddleware(raw, auth)(scope, receive, send)
    assert received == [scope]
    assert received[0] is scope
    assert "auth" not in scope and "user" not in scope


async def test_an_anonymous_request_sees_an_empty_auth_state(
    auth: Auth, client_factory: ClientFactory
) -> None:
    client = client_factory(AuthMiddleware(starlette_app(), auth), base_url=BASE)
    seen = (await client.get("/whoami")).json()
    assert seen == {
        "userId": None,
        "sessionId": None,
        "authenticated": False,
        "error": None,
        "source": None,
        "refreshed": False,
        "starletteUser": False,
    }


async def test_the_engine_reopens_after_a_lifespan_cycle(
    unopened_auth_factory: Callable[..., Auth], client_factory: ClientFactory
) -> None:
    # uvicorn --reload and test suites run startup/shutdown more than once on one engine.
    auth = unopened_auth_factory()
    app = AuthMiddleware(starlette_app(), auth)
    for _ in range(2):
        async with lifespan_of(app) as lifespan:
            await lifespan.startup()
            assert auth.is_open
            await lifespan.shutdown()
        assert not auth.is_open
    client = client_factory(app)
    await sign_up(client)
    assert (await client.get("/whoami")).json()["authenticated"] is True
