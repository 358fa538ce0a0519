"""The app each server process of the multi-instance suite runs (``multi_instance_app:app``).

Settings come only from ``AUTHBRIDGE_*`` variables (cheap password hashing is the one override:
these tests do not measure hashing). No route touches the database, so "the database is down"
can only show in the auth endpoints.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from authbridge import (
    Auth,
    AuthConfig,
    AuthMiddleware,
    PasswordConfig,
    get_auth_session_id,
    get_auth_state,
    get_auth_user_id,
)

FAST_PASSWORDS = PasswordConfig(argon2_memory_kib=1024, argon2_time_cost=1)


async def home(request: Request) -> Response:
    """An anonymous page."""
    return PlainTextResponse("hello")


async def whoami(request: Request) -> Response:
    """``{"userId", "sessionId"}``, or 401 with the reason a token was rejected."""
    user_id = get_auth_user_id(request)
    if user_id is None:
        reason = get_auth_state(request).error
        return JSONResponse({"error": "Unauthenticated", "reason": reason}, status_code=401)
    return JSONResponse({"userId": user_id, "sessionId": get_auth_session_id(request)})


app = AuthMiddleware(
    Starlette(routes=[Route("/", home), Route("/api/whoami", whoami)]),
    Auth(AuthConfig.from_env(password=FAST_PASSWORDS)),
)
