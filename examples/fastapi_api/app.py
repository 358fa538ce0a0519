"""FastAPI behind ``AuthMiddleware``: routes protected by the middleware, a dependency that yields
the signed-in user, and one server-rendered page.

Run it from the repository root::

    python -m uvicorn examples.fastapi_api.app:app

* ``GET /api/private/**`` — protected by the middleware's route matcher: without a session or a
  bearer token the request never reaches FastAPI (401, ``WWW-Authenticate: Bearer``).
* ``GET /api/me`` — ``authbridge.fastapi``'s ``CurrentUser`` dependency loads the ``users`` row
  (one query, cached for the request) or answers 401.
* ``GET /api/status`` — public; says whether the caller is signed in, with no database access.
* ``GET /`` — a page rendered by Starlette's (sync) ``Jinja2Templates``; the optional-user
  dependency loads the row first, so the template's ``auth.user()`` reads it without a query.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from authbridge import Auth, AuthConfig, AuthMiddleware, get_auth_user_id, ssr
from authbridge.fastapi import CurrentSession, CurrentUser, OptionalUser

__all__ = ["app", "create_app"]

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
ssr.install(templates)


def build_api() -> FastAPI:
    api = FastAPI(title="authbridge FastAPI example")

    @api.get("/api/me")
    async def me(user: CurrentUser, session: CurrentSession) -> dict[str, Any]:
        return {"userId": user.id, "email": user.email, "sessionId": session.session_id}

    @api.get("/api/status")
    async def status(request: Request) -> dict[str, Any]:
        return {"signedIn": ssr.is_authenticated(request)}

    @api.get("/api/private/reports")
    async def reports(request: Request) -> dict[str, Any]:
        # The middleware let this request through, so someone is signed in.
        return {"owner": get_auth_user_id(request), "reports": []}

    @api.get("/", response_class=HTMLResponse)
    async def home(request: Request, user: OptionalUser) -> HTMLResponse:
        return templates.TemplateResponse(request, "index.html", {"user": user})

    return api


def create_app(config: AuthConfig | None = None) -> AuthMiddleware:
    """Build the example (``config`` defaults to ``AuthConfig.from_env()``)."""
    auth = Auth(config if config is not None else AuthConfig.from_env(), create_tables=True)
    return AuthMiddleware(build_api(), auth, protect=["/api/private/**"])


app = create_app()
