"""Email one-time codes (report table [3]): sends/s and code sign-ins/s, SQLite and PostgreSQL.

* ``codes-send-<db>``: ``{"provider": "email", "params": {"email"}}`` steps back to back, each to a
  new address, through the SMTP sender to a real SMTP server (aiosmtpd on 127.0.0.1, one
  connection per message as the sender does): throttle buckets, code + link, template
  rendering, SMTP, the hashed row.
* ``codes-verify-<db>``: ``{"email", "code"}`` steps for codes sent beforehand (to a sender that
  keeps them in memory, so only verification is timed): the row read, the constant-time check,
  the conditional UPDATE that uses the code, the user + account creation and the new session.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

from authbridge import Auth, AuthConfig, EmailConfig, EmailProvider, MailMessage
from authbridge.providers import SignInRequest
from bench.report import one_line
from bench.runners.inprocess import ScenarioUnavailable
from bench.runners.throughput import Rate, ThroughputSettings, parallel
from bench.scenarios import databases

_CODE = re.compile(r"^(\d{8})$", re.M)


class _KeptCodes:
    """An EmailSender that keeps each address's code (verification is timed alone)."""

    def __init__(self) -> None:
        self.codes: dict[str, str] = {}

    async def send(self, message: MailMessage) -> None:
        found = _CODE.search(message.text)
        assert found is not None
        self.codes[message.to] = found.group(1)


@contextlib.contextmanager
def _smtp_server() -> Iterator[str]:
    try:
        from aiosmtpd.controller import Controller
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise ScenarioUnavailable(f"aiosmtpd not installed ({exc})") from exc

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 Message accepted"

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    controller = Controller(Sink(), hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def _email_config(smtp_url: str | None) -> EmailConfig:
    # Benchmarks send to thousands of addresses from one client: lift the send limits.
    return EmailConfig(
        smtp_url=smtp_url,
        sender="bench@example.com",
        resend_interval=timedelta(0),
        sends_per_hour=10**9,
        ip_sends_per_hour=10**9,
    )


@contextlib.asynccontextmanager
async def _opened(backend: databases.Backend, **kwargs: Any) -> Any:
    database = await databases.create_database(backend)
    auth: Auth | None = None
    try:
        email: EmailConfig = kwargs.pop("email")
        auth = Auth(
            AuthConfig(
                database_url=database.url, jwt_private_keys=(databases.private_pem(),), email=email
            ),
            create_tables=True,
            providers=[EmailProvider()],
            **kwargs,
        )
        await auth.open()
        yield auth
    finally:
        try:
            if auth is not None:
                await auth.close()
        finally:
            await database.drop()


def _sender(auth: Auth, prefix: str) -> Callable[[], Awaitable[None]]:
    counter = itertools.count()

    async def step() -> None:
        address = f"{prefix}-{next(counter)}@example.com"
        await auth.sign_in_step("email", {"email": address}, SignInRequest())

    return step


def _verifier(auth: Auth, kept: _KeptCodes, addresses: list[str]) -> Callable[[], Awaitable[None]]:
    queue = iter(addresses)

    async def step() -> None:
        address = next(queue)
        await auth.sign_in_step(
            "email", {"email": address, "code": kept.codes[address]}, SignInRequest()
        )

    return step


async def code_rates(
    settings: ThroughputSettings, log: Callable[[str], None] = print
) -> list[Rate]:
    """Sends/s and code sign-ins/s, sequential and ``refresh_concurrency`` at once."""
    results: list[Rate] = []
    concurrency = settings.refresh_concurrency
    budget = min(settings.max_ops_per_round, 2_000)
    with _smtp_server() as smtp_url:
        for backend in ("sqlite", "postgresql"):
            label = "SQLite" if backend == "sqlite" else "PostgreSQL"
            send = Rate(
                f"codes-send-{backend}-x{concurrency}",
                "sends/s",
                f"email code + link via SMTP (aiosmtpd), {concurrency} at once ({label})",
            )
            verify = Rate(
                f"codes-verify-{backend}-x{concurrency}",
                "sign-ins/s",
                f"sign in with an emailed code (new user + session), {concurrency} at once"
                f" ({label})",
            )
            results += [send, verify]
            try:
                async with _opened(backend, email=_email_config(smtp_url)) as auth:
                    await _sender(auth, "warm")()
                    for round_index in range(settings.rounds):
                        steps = [_sender(auth, f"s{round_index}-{n}") for n in range(concurrency)]
                        await parallel(steps, settings.refresh_round_seconds, budget, send)
                kept = _KeptCodes()
                async with _opened(backend, email=_email_config(None), mailer=kept) as auth:
                    for round_index in range(settings.rounds):
                        per_step = min(budget, 800) // concurrency
                        batches: list[list[str]] = []
                        for n in range(concurrency):
                            batch = [
                                f"v{round_index}-{n}-{i}-{secrets.token_hex(3)}@example.com"
                                for i in range(per_step)
                            ]
                            await asyncio.gather(
                                *(
                                    auth.sign_in_step("email", {"email": a}, SignInRequest())
                                    for a in batch
                                )
                            )
                            batches.append(batch)
                        steps = [_verifier(auth, kept, batch) for batch in batches]
                        await parallel(
                            steps, settings.refresh_round_seconds, per_step * concurrency, verify
                        )
            except (ScenarioUnavailable, OSError) as exc:
                log(f"  skipped email codes on {label}: {one_line(str(exc))}")
                send.skipped = verify.skipped = str(exc)
            except Exception as exc:  # the rest of the report still runs
                log(f"  FAILED email codes on {label}: {type(exc).__name__}: {one_line(str(exc))}")
                send.skipped = verify.skipped = f"failed: {exc}"
    return results
