"""Fixtures for the email suites: a real SMTP server (aiosmtpd on 127.0.0.1, a free port) whose
messages are parsed with the standard ``email`` package, plus servers that are down or too slow,
an in-process app client, and helpers that read codes and links out of messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from authbridge import Auth, AuthMiddleware
from tests.toolkit.clients import asgi_client
from tests.toolkit.servers import refused_url

from .smtp import (
    Mailbox,
    SmtpServer,
    code_in,
    html_part,
    link_in,
    running_smtp_server,
    text_part,
    token_in,
)

__all__ = [
    "Mailbox",
    "SmtpServer",
    "code_in",
    "html_part",
    "link_in",
    "text_part",
    "token_in",
]

BASE = "http://localhost"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 (its own thread and loop), stopped after the test."""
    with running_smtp_server() as server:
        yield server


@pytest.fixture
async def silent_smtp_url() -> AsyncIterator[str]:
    """An SMTP URL whose server accepts connections and never says a word (a stuck server)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
def down_smtp_url() -> str:
    """An SMTP URL nothing listens on (connection refused)."""
    return refused_url("smtp")


async def _home(request: Any) -> PlainTextResponse:
    return PlainTextResponse("home")


def client_for(auth: Auth, *, ip: str = "203.0.113.9") -> httpx.AsyncClient:
    """An in-process client of a tiny app behind the middleware (cookies kept; same-origin)."""
    app = AuthMiddleware(Starlette(routes=[Route("/", _home), Route("/signin", _home)]), auth)
    transport = httpx.ASGITransport(app=app, client=(ip, 1234))
    return asgi_client(app, BASE, transport=transport, headers={"origin": BASE})
