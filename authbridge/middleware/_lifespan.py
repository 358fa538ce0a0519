"""The engine's lifecycle under an ASGI server: opened with the server's lifespan (a startup
error stops the server), or lazily on the first request when the server sends no lifespan."""

from __future__ import annotations

import logging

from .._asgi import ASGIApp, Message, Receive, Scope, Send
from ..engine import Auth
from ..errors import AuthError, StoreUnavailable

__all__ = ["open_lazily", "serve_lifespan"]

logger = logging.getLogger("authbridge.middleware")

_LIFESPAN_ENDS = frozenset(
    {"lifespan.shutdown.complete", "lifespan.shutdown.failed", "lifespan.startup.failed"}
)


async def open_lazily(auth: Auth) -> None:
    """Open ``auth`` for a request that arrived before any lifespan startup; when the store
    cannot be opened, requests are served as anonymous (protected routes answer 503)."""
    try:
        await auth.open()
    except StoreUnavailable:
        logger.error("authbridge could not open its store; serving requests as anonymous")
        return
    auth.start_background()


async def _open_at_startup(auth: Auth) -> str | None:
    """Open the engine for the server's startup; the error message when it cannot."""
    try:
        await auth.open()
    except AuthError as exc:
        message = f"authbridge cannot start: {exc}"
        logger.error("%s", message)
        return message
    auth.start_background()
    return None


async def serve_lifespan(
    app: ASGIApp, auth: Auth, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run ``app``'s lifespan with ``auth`` opened at startup and closed at shutdown; answer the
    protocol ourselves when the app refuses it."""
    # A startup error must stop the server, even under uvicorn's lifespan "auto" (which
    # treats an exception as "lifespan unsupported" and serves 500s): the app's own startup
    # still runs, and its "complete" is turned into "failed" with our message.
    received_startup = False
    failure: str | None = None

    async def receive_wrapper() -> Message:
        nonlocal received_startup, failure
        message = await receive()
        if message["type"] == "lifespan.startup":
            received_startup = True
            failure = await _open_at_startup(auth)
        return message

    async def send_wrapper(message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete" and failure is not None:
            message = {"type": "lifespan.startup.failed", "message": failure}
            await auth.close()
        elif kind in _LIFESPAN_ENDS:
            await auth.close()
        await send(message)

    try:
        await app(scope, receive_wrapper, send_wrapper)
    except Exception as exc:
        if received_startup:
            raise
        # The app refuses lifespan (Django's handler raises): serve it ourselves below.
        logger.info("the app refused lifespan (%r); authbridge answers it", exc)
    else:
        if received_startup:
            return
    await _own_lifespan(auth, receive, send)


async def _own_lifespan(auth: Auth, receive: Receive, send: Send) -> None:
    """The lifespan protocol for an app that does not speak it."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            failure = await _open_at_startup(auth)
            if failure is not None:
                await send({"type": "lifespan.startup.failed", "message": failure})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await auth.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
