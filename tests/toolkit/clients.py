"""httpx clients of ASGI apps, in-process (no server, no sockets), and the JSON calls tests use
to get a signed-in client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from .engines import PASSWORD

__all__ = ["ClientFactory", "asgi_client", "bearer_token", "sign_in", "sign_up"]

ClientFactory = Callable[..., httpx.AsyncClient]
"""The shared ``client_factory`` fixture: ``client_factory(app, base_url=..., **httpx_options)``
(pass ``transport=httpx.AsyncHTTPTransport()`` to talk to a real server at ``base_url``)."""


def asgi_client(
    app: Any, base_url: str = "https://testserver", **options: Any
) -> httpx.AsyncClient:
    """A client that calls ``app`` in-process, keeping cookies in its jar like a browser. Close
    it (``async with``); the ``client_factory`` fixture closes the ones it makes."""
    options.setdefault("transport", httpx.ASGITransport(app=app))
    return httpx.AsyncClient(base_url=base_url, **options)


async def sign_up(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = PASSWORD
) -> dict[str, Any]:
    """Sign up through the JSON endpoint (``{"signedIn", "userId", "sessionId"}``); the
    client's jar keeps the cookies."""
    response = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": email, "password": password},
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def sign_in(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = PASSWORD
) -> httpx.Response:
    """Sign in through the JSON endpoint; the answer is the test's to check."""
    return await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signIn", "email": email, "password": password},
        },
    )


async def bearer_token(client: httpx.AsyncClient) -> str:
    """A fresh access token for the client's session (``POST /api/auth/token``)."""
    response = await client.post("/api/auth/token")
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token
