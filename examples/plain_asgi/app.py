"""``AuthMiddleware`` around a raw ASGI app that renders with a bare ``jinja2.Environment``.

Run it from the repository root::

    python -m uvicorn examples.plain_asgi.app:app

No framework: the app reads auth from the ASGI scope (``get_auth_user_id(scope)``) and builds
its template context with ``await ssr.context(scope, load_user=True)``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import jinja2

from authbridge import Auth, AuthConfig, AuthMiddleware, get_auth_session_id, get_auth_user_id, ssr

__all__ = ["app", "create_app", "site"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

env = ssr.install(
    jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
        autoescape=True,
    )
)


async def respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, status: int, data: Any) -> None:
    await respond(send, status, json.dumps(data).encode(), b"application/json")


async def site(scope: Scope, receive: Receive, send: Send) -> None:
    """The app: ``/`` (a page), ``/whoami`` (JSON) and ``/private/...`` (protected)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/":
        variables = await ssr.context(scope, load_user=True)
        html = env.get_template("index.html").render(variables)
        await respond(send, 200, html.encode(), b"text/html; charset=utf-8")
    elif path == "/whoami":
        await respond_json(
            send, 200, {"userId": get_auth_user_id(scope), "sessionId": get_auth_session_id(scope)}
        )
    elif path.startswith("/private/"):
        await respond_json(send, 200, {"secret": f"for {get_auth_user_id(scope)} only"})
    else:
        await respond_json(send, 404, {"error": "NotFound"})


def create_app(config: AuthConfig | None = None) -> AuthMiddleware:
    """Build the example (``config`` defaults to ``AuthConfig.from_env()``)."""
    auth = Auth(config if config is not None else AuthConfig.from_env(), create_tables=True)
    return AuthMiddleware(site, auth, protect=["/private/**"])


app = create_app()
