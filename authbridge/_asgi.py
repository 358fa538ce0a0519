"""Minimal ASGI plumbing: typed aliases, small responses and a bounded body reader."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

__all__ = [
    "ASGIApp",
    "AnyASGIApp",
    "BodyTooLarge",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "json_response",
    "make_private",
    "read_body",
    "redirect_response",
    "send_response",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
AnyASGIApp = Callable[..., Awaitable[None]]
"""Any ASGI 3 app, whatever scope and message types its framework declares (Litestar and Quart
type their ``__call__`` with TypedDicts, which a plain :data:`ASGIApp` does not accept)."""
Headers = list[tuple[bytes, bytes]]


class BodyTooLarge(Exception):
    """The request body exceeded the limit."""


class ClientDisconnected(Exception):
    """The client went away while the body was being read."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """Read the whole request body, refusing more than ``limit`` bytes.

    Raises:
        BodyTooLarge: the body is larger than ``limit``.
        ClientDisconnected: the client disconnected.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_response(
    send: Send,
    status: int,
    body: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = (),
    content_type: bytes | None = None,
) -> None:
    """Send a complete response."""
    out: Headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        out.append((b"content-type", content_type))
    out.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


async def json_response(
    send: Send, status: int, data: Any, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Send a JSON response."""
    body = json.dumps(data, separators=(",", ":")).encode("utf-8")
    await send_response(send, status, body, headers, b"application/json")


async def redirect_response(
    send: Send, location: str, headers: Sequence[tuple[bytes, bytes]] = (), status: int = 303
) -> None:
    """Send a redirect (``location`` must already be a safe, encoded path)."""
    await send_response(
        send,
        status,
        b"",
        [(b"location", location.encode("latin-1")), *headers],
    )


def make_private(headers: list[tuple[bytes, bytes]], *, no_store: bool, bearer: bool) -> None:
    """Make a response uncacheable by shared caches and vary it on the credentials."""
    for name, _ in headers:
        lower = name.lower()
        if lower == b"cache-control" or lower == b"vary":
            break
    else:  # the common case: nothing to merge with
        headers.append((b"cache-control", b"private, no-store" if no_store else b"private"))
        headers.append((b"vary", b"Cookie, Authorization" if bearer else b"Cookie"))
        return
    cache_control: bytes | None = None
    vary: list[bytes] = []
    kept: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"cache-control":
            cache_control = value
        elif lower == b"vary":
            vary.extend(v.strip() for v in value.split(b","))
        else:
            kept.append((name, value))
    if no_store:
        cache_control = b"private, no-store"
    elif cache_control is None:
        cache_control = b"private"
    else:
        lowered = cache_control.lower()
        if b"private" not in lowered and b"no-store" not in lowered:
            parts = [p.strip() for p in cache_control.split(b",") if p.strip().lower() != b"public"]
            cache_control = b", ".join([b"private", *parts])
    wanted = [b"Cookie", b"Authorization"] if bearer else [b"Cookie"]
    lowered_vary = {v.lower() for v in vary}
    if b"*" not in lowered_vary:
        vary.extend(w for w in wanted if w.lower() not in lowered_vary)
    headers[:] = kept
    headers.append((b"cache-control", cache_control))
    headers.append((b"vary", b", ".join(v for v in vary if v)))
