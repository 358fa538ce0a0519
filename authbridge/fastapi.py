"""FastAPI integration: ``Annotated`` dependencies and the OpenAPI bearer scheme.

::

    from fastapi import FastAPI
    from authbridge import Auth, AuthMiddleware
    from authbridge.fastapi import CurrentUser, OptionalUser

    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=Auth())

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str | None]:
        return {"id": user.id, "email": user.email}

Every dependency declares the ``bearer`` security scheme, so ``/docs`` shows a lock on the
routes that use one and "Authorize" takes an access token (``POST /api/auth/token``). Routes
that require a user answer ``401`` with ``WWW-Authenticate: Bearer`` when nobody is signed in;
cookies work exactly like the bearer token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from .engine import User
from .errors import StoreUnavailable
from .middleware._authenticator import NOT_TOKEN_ERRORS
from .sessions import SessionInfo
from .state import AuthState, get_auth_session, get_auth_state, get_auth_user

__all__ = [
    "CurrentAuthState",
    "CurrentSession",
    "CurrentUser",
    "CurrentUserId",
    "OptionalUser",
    "OptionalUserId",
    "auth_state",
    "bearer_scheme",
    "current_session",
    "current_user",
    "current_user_id",
    "optional_user",
    "optional_user_id",
]


class _BearerScheme(HTTPBearer):
    """Declares the scheme in OpenAPI and reads nothing: the middleware verified the token.
    Taking an ``HTTPConnection`` (not a ``Request``) lets WebSocket routes use it too."""

    async def __call__(self, connection: HTTPConnection) -> HTTPAuthorizationCredentials | None:
        return None


bearer_scheme = _BearerScheme(
    auto_error=False,
    bearerFormat="JWT",
    scheme_name="bearer",
    description=(
        "An authbridge access token (`POST /api/auth/token` while signed in, or "
        "`window.authbridge.getToken()` in the browser). Browsers may use the cookies instead."
    ),
)
"""The OpenAPI security scheme the dependencies declare (``/docs`` "Authorize" button). It reads
nothing itself: :class:`~authbridge.AuthMiddleware` has already verified the token."""


def _unauthenticated(state: AuthState) -> HTTPException:
    """The middleware's own answer for a protected route, as an ``HTTPException``."""
    if state.error == "unavailable":
        # The user may well be signed in (the database is down): ask the client to retry.
        return _unavailable()
    challenge = 'Bearer realm="authbridge"'
    if state.error is not None and state.error not in NOT_TOKEN_ERRORS:
        challenge += f', error="invalid_token", error_description="{state.error}"'
    return HTTPException(401, detail="Unauthenticated", headers={"WWW-Authenticate": challenge})


def _unavailable() -> HTTPException:
    return HTTPException(503, detail="StoreUnavailable", headers={"Retry-After": "1"})


async def auth_state(
    connection: HTTPConnection,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> AuthState:
    """The request's :class:`~authbridge.AuthState` (signed in or not).

    Raises:
        RuntimeError: ``AuthMiddleware`` is not installed (a setup error, so a 500).
    """
    return get_auth_state(connection)


CurrentAuthState = Annotated[AuthState, Depends(auth_state)]
"""The auth state, signed in or not."""


async def optional_user_id(state: CurrentAuthState) -> str | None:
    """The signed-in user's id, or ``None``. No database access."""
    return state.user_id


async def current_user_id(state: CurrentAuthState) -> str:
    """The signed-in user's id. No database access.

    Raises:
        HTTPException: 401 with ``WWW-Authenticate: Bearer`` when nobody is signed in.
    """
    if state.user_id is None:
        raise _unauthenticated(state)
    return state.user_id


async def optional_user(connection: HTTPConnection, state: CurrentAuthState) -> User | None:
    """The signed-in user's row, or ``None`` (one query, cached for the request).

    Raises:
        HTTPException: 503 with ``Retry-After`` when the database failed.
    """
    if state.user_id is None:
        return None
    try:
        return await get_auth_user(connection)
    except StoreUnavailable as exc:
        raise _unavailable() from exc


async def current_user(connection: HTTPConnection, state: CurrentAuthState) -> User:
    """The signed-in user's row (one query, cached for the request).

    Raises:
        HTTPException: 401 when nobody is signed in, or the user was deleted meanwhile;
            503 with ``Retry-After`` when the database failed.
    """
    if state.user_id is None:
        raise _unauthenticated(state)
    try:
        user = await get_auth_user(connection)
    except StoreUnavailable as exc:
        raise _unavailable() from exc
    if user is None:
        raise _unauthenticated(state)
    return user


async def current_session(connection: HTTPConnection, state: CurrentAuthState) -> SessionInfo:
    """The current ``auth_sessions`` row (one query, cached for the request).

    Raises:
        HTTPException: 401 when nobody is signed in, or the session has ended meanwhile;
            503 with ``Retry-After`` when the database failed.
    """
    if state.session_id is None:
        raise _unauthenticated(state)
    try:
        session = await get_auth_session(connection)
    except StoreUnavailable as exc:
        raise _unavailable() from exc
    if session is None:
        raise _unauthenticated(state)
    return session


OptionalUserId = Annotated[str | None, Depends(optional_user_id)]
"""The signed-in user's id or ``None``."""
CurrentUserId = Annotated[str, Depends(current_user_id)]
"""The signed-in user's id; 401 otherwise."""
OptionalUser = Annotated[User | None, Depends(optional_user)]
"""The signed-in user's row or ``None``."""
CurrentUser = Annotated[User, Depends(current_user)]
"""The signed-in user's row; 401 otherwise."""
CurrentSession = Annotated[SessionInfo, Depends(current_session)]
"""The current session's row; 401 otherwise."""
