"""A verified address becomes its user's, once: signing in by code again reuses the user and
its method, and a first sign-in of a new address still ends with one user when another instance
writes that address at the same moment (a sign-up lands between the claim's read and its write;
the address keeps changing under three attempts: 503, never a 500).

"At the same moment" is made exact, not left to scheduling: right after the claim reads the
address (its ``SELECT ... AS verified_at``), another instance of the app, with its own engine,
event loop and thread, runs a step against the same database to completion."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from authbridge import (
    Auth,
    AuthConfig,
    EmailConfig,
    EmailProvider,
    InvalidCredentials,
    PasswordProvider,
)
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import FAST_PASSWORDS, PASSWORD, AuthFactory, signing_key

from .conftest import SmtpServer, client_for, code_in

ADA = "ada@example.com"
CLAIM_READ = "AS verified_at"
"""In the statement that reads who owns an address (and whether it is verified)."""

Step = Callable[[Auth], Awaitable[None]]


@pytest.fixture
async def auth(auth_factory: AuthFactory, smtp_server: SmtpServer) -> Auth:
    return await auth_factory(
        email=EmailConfig(smtp_url=smtp_server.url, sender="a@example.com"),
        auth_kwargs={"providers": [PasswordProvider(), EmailProvider()]},
    )


def in_another_instance(auth: Auth, step: Step) -> None:
    """Run ``step`` to completion on a second instance of the app on ``auth``'s database."""

    async def run() -> None:
        other = Auth(
            AuthConfig(
                database_url=auth.config.database_url,
                password=FAST_PASSWORDS,
                jwt_private_keys=(signing_key(),),
            ),
            clock=auth.clock,
        )
        await other.open()
        try:
            await step(other)
        finally:
            await other.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result(timeout=30)


@contextlib.contextmanager
def after_each_claim_read(auth: Auth, *steps: Step) -> Iterator[None]:
    """Run the next of ``steps`` in another instance right after each read of an address's
    owner; every step must have run by the end of the block."""
    pending = list(steps)
    engine = auth.store.engine.sync_engine

    def hook(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if pending and CLAIM_READ in statement:
            in_another_instance(auth, pending.pop(0))

    event.listen(engine, "after_cursor_execute", hook)
    try:
        yield
    finally:
        event.remove(engine, "after_cursor_execute", hook)
    assert pending == []


async def sign_in(client: httpx.AsyncClient, provider: str, **params: Any) -> httpx.Response:
    return await client.post("/api/auth/signin", json={"provider": provider, "params": params})


async def code_for(client: httpx.AsyncClient, smtp_server: SmtpServer, email: str) -> str:
    started = await sign_in(client, "email", email=email)
    assert started.json() == {"started": True}
    return code_in(smtp_server.mailbox.last(email))


async def methods(client: httpx.AsyncClient) -> list[dict[str, str]]:
    account = await client.get("/api/auth/account")
    assert account.status_code == 200, account.text
    found: list[dict[str, str]] = account.json()["methods"]
    return found


async def test_signing_in_by_code_again_reuses_the_user_and_its_method(
    auth: Auth, smtp_server: SmtpServer, clock: FakeClock
) -> None:
    async with client_for(auth) as laptop, client_for(auth) as phone:
        first = await sign_in(
            laptop, "email", email=ADA, code=await code_for(laptop, smtp_server, ADA)
        )
        clock.advance(60)
        again = await sign_in(
            phone, "email", email=ADA, code=await code_for(phone, smtp_server, ADA)
        )
        assert again.json()["userId"] == first.json()["userId"]
        assert await methods(phone) == [{"provider": "email", "identifier": "a***@example.com"}]
        assert (await laptop.post("/api/auth/token")).status_code == 200  # a verified user's


async def test_a_sign_up_landing_while_a_new_address_is_claimed_is_taken_over(
    auth: Auth, smtp_server: SmtpServer
) -> None:
    squatters: list[str] = []

    async def sign_up(other: Auth) -> None:
        squatters.append((await other.sign_up_with_password(ADA, PASSWORD)).user_id)

    async with client_for(auth) as owner:
        code = await code_for(owner, smtp_server, ADA)
        with after_each_claim_read(auth, sign_up):
            done = await sign_in(owner, "email", email=ADA, code=code)
        assert done.status_code == 200, done.text
        # One user: the one that landed first, now the code's owner's ...
        assert done.json()["userId"] == squatters[0]
        # ... whose password, set by someone who never proved the address, is gone.
        with pytest.raises(InvalidCredentials):
            await auth.sign_in_with_password(ADA, PASSWORD)
        assert {"provider": "email", "identifier": "a***@example.com"} in await methods(owner)


async def test_an_address_that_keeps_changing_under_the_claim_is_503_not_a_crash(
    auth: Auth, smtp_server: SmtpServer
) -> None:
    squatters: list[str] = []

    async def sign_up(other: Auth) -> None:
        squatters.append((await other.sign_up_with_password(ADA, PASSWORD)).user_id)

    async def delete_squatter(other: Auth) -> None:
        assert await other.delete_user(squatters[-1])

    async with client_for(auth) as owner:
        code = await code_for(owner, smtp_server, ADA)
        # Read: nobody (a sign-up lands); read: the squatter (deleted); read: nobody (again).
        with after_each_claim_read(auth, sign_up, delete_squatter, sign_up):
            done = await sign_in(owner, "email", email=ADA, code=code)
        assert (done.status_code, done.json()) == (503, {"error": "StoreUnavailable"})
        assert (await owner.post("/api/auth/token")).status_code == 401  # not signed in
    # Nothing of the claim was kept: the last sign-up stands as it was.
    assert (await auth.sign_in_with_password(ADA, PASSWORD)).user_id == squatters[-1]
