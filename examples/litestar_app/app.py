"""Litestar with ``AuthPlugin``: the middleware, the auth endpoints and the engine's lifespan
installed the native way, and the ``requires_auth`` guard.

Run it from the repository root::

    python -m uvicorn examples.litestar_app.app:app

* ``GET /api/me`` — guarded: 401 with ``WWW-Authenticate: Bearer`` when signed out; reads
  ``request.user`` / ``request.auth`` and loads the ``users`` row.
* ``GET /api/status`` — public.
* ``GET /signin`` — the built-in sign-in page (the app defines none).
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get

from authbridge import Auth, AuthConfig, get_auth_user
from authbridge.litestar import AuthPlugin, AuthRequest, requires_auth

__all__ = ["app", "create_app"]


@get("/api/me", guards=[requires_auth])
async def me(request: AuthRequest) -> dict[str, Any]:
    """The signed-in user (the guard let the request through)."""
    user = await get_auth_user(request)
    return {
        "userId": request.user.user_id,
        "sessionId": request.auth.session_id,
        "email": user.email if user else None,
    }


@get("/api/status")
async def status(request: AuthRequest) -> dict[str, bool]:
    """Whether the caller is signed in (no database access)."""
    return {"signedIn": request.user.is_authenticated}


def create_app(config: AuthConfig | None = None) -> Litestar:
    """Build the example (``config`` defaults to ``AuthConfig.from_env()``)."""
    auth = Auth(config if config is not None else AuthConfig.from_env(), create_tables=True)
    return Litestar([me, status], plugins=[AuthPlugin(auth)])


app = create_app()
