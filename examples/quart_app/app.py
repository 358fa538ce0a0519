"""Quart behind ``AuthMiddleware``: Quart is an ASGI app, so it is wrapped like any other.

Run it from the repository root::

    python -m uvicorn examples.quart_app.app:app

* ``GET /api/me`` — the signed-in user's row, or 401.
* ``GET /api/private/...`` — protected by the middleware (401 / redirect to the sign-in page).
"""

from __future__ import annotations

from typing import Any

from quart import Quart, request

from authbridge import Auth, AuthConfig, AuthMiddleware, get_auth_user, get_auth_user_id

__all__ = ["app", "create_app"]


def build_quart() -> Quart:
    quart = Quart("authbridge_quart_example")

    @quart.get("/api/me")
    async def me() -> tuple[dict[str, Any], int]:
        user = await get_auth_user(request)
        if user is None:
            return {"error": "Unauthenticated"}, 401
        return {"userId": user.id, "email": user.email}, 200

    @quart.get("/api/private/reports")
    async def reports() -> dict[str, Any]:
        return {"owner": get_auth_user_id(request), "reports": []}

    return quart


def create_app(config: AuthConfig | None = None) -> AuthMiddleware:
    """Build the example (``config`` defaults to ``AuthConfig.from_env()``)."""
    auth = Auth(config if config is not None else AuthConfig.from_env(), create_tables=True)
    return AuthMiddleware(build_quart(), auth, protect=["/api/private/**"])


app = create_app()
