"""FastAPI behind ``AuthMiddleware``: routes protected by the middleware, a dependency that yields
the signed-in user, and one server-rendered page.

Run it from the repository root::

    python -m uvicorn examples.fastapi_api.app:app

* ``GET /api/private/**`` — protected by the middleware's route matcher: without a session or a
  bearer token the request never reaches FastAPI (401, ``WWW-Authenticate: Bearer``).
* ``GET /api/me`` — the ``CurrentUser`` dependency loads the ``users`` row (one query, cached for
  the request) or answers 401.
* ``GET /api/status`` — public; says whether the caller is signed in, with no database access.
* ``GET /`` — a page rendered by Starlette's (sync) ``Jinja2Templates``; the optional-user
  dependency loads the row first, so the template's ``auth.user()`` reads it without a query.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from authbridge import (
    Auth,
    AuthConfig,
    AuthMiddleware,
    User,
    get_auth_session_id,
    get_auth_user,
    get_auth_user_id,
    ssr,
)

__all__ = ["CurrentUser", "OptionalUser", "app", "create_app"]

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
ssr.install(templates)


async def optional_user(request: Request) -> User | None:
    """The signed-in user's row, or ``None``."""
    return await get_auth_user(request)


async def current_user(request: Request) -> User:
    """The signed-in user's row; 401 with a Bearer challenge otherwise."""
    user = await get_auth_user(request)
    if user is None:
        raise HTTPException(
            status_code=401, detail="Unauthenticated", headers={"WWW-Authenticate": "Bearer"}
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]


def build_api() -> FastAPI:
    api = FastAPI(title="authbridge FastAPI example")

    @api.get("/api/me")
    async def me(user: CurrentUser, request: Request) -> dict[str, Any]:
        return {"userId": user.id, "email": user.email, "sessionId": get_auth_session_id(request)}

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
