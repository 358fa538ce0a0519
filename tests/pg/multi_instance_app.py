"""The app each server process of the multi-instance suite runs (``multi_instance_app:app``).

Settings come only from ``AUTHBRIDGE_*`` variables (cheap password hashing is the one override:
these tests do not measure hashing). No route touches the database, so "the database is down"
can only show in the auth endpoints. ``PG_TEST_DRIVER_TIMEOUT`` (a test-only variable) gives
the asyncpg driver connect and statement timeouts.
"""

from __future__ import annotations

import os
from typing import Any

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


def _engine_options() -> dict[str, Any]:
    # PG_TEST_DRIVER_TIMEOUT (seconds): the driver timeouts the scaling guide recommends.
    timeout = os.environ.get("PG_TEST_DRIVER_TIMEOUT")
    if not timeout:
        return {}
    return {"connect_args": {"timeout": float(timeout), "command_timeout": float(timeout)}}


app = AuthMiddleware(
    Starlette(routes=[Route("/", home), Route("/api/whoami", whoami)]),
    Auth(AuthConfig.from_env(password=FAST_PASSWORDS), engine_options=_engine_options()),
)
