"""Per-request auth state and the helpers that read it (``get_auth_user_id`` & co).

The middleware puts an immutable :class:`AuthState` in ``scope["auth"]`` and a Starlette-compatible
:class:`AuthUser` in ``scope["user"]``, so ``request.user.is_authenticated`` and
``starlette.authentication.requires`` work unchanged. Reading the state marks the response as
auth-dependent, which is what adds ``Vary: Cookie`` / ``Cache-Control: private`` to it.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .engine import Auth, User
    from .sessions import SessionInfo

__all__ = [
    "AuthState",
    "AuthUser",
    "TokenSource",
    "get_auth_session",
    "get_auth_session_id",
    "get_auth_state",
    "get_auth_user",
    "get_auth_user_id",
]

TokenSource = Literal["cookie", "bearer"]

SCOPE_ENGINE = "authbridge.engine"
SCOPE_USER_ROW = "authbridge.user_row"
SCOPE_SESSION_ROW = "authbridge.session_row"
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class AuthState:
    """Who is signed in for this request (read-only).

    Attributes:
        user_id, session_id: the signed-in user and session, or ``None``.
        token: the verified access token (the JWT), or ``None``.
        claims: the token's claims (read-only mapping).
        expires_at: when the access token expires.
        error: why a presented token was rejected (``"expired"``, ``"invalid_signature"``,
            ``"revoked"``, ``"cross_site"``, ...), else ``None``.
        source: where the token came from: ``"cookie"`` or ``"bearer"``.
        tab: ``per_tab`` mode: the tab slot this request was served for.
        refreshed: the middleware rotated the tokens during this request.
    """

    __slots__ = (
        "_claims",
        "_error",
        "_expires_at",
        "_refreshed",
        "_session_id",
        "_source",
        "_tab",
        "_token",
        "_used",
        "_user_id",
    )
    _user_id: str | None
    _session_id: str | None
    _token: str | None
    _claims: Mapping[str, Any]
    _expires_at: datetime | None
    _error: str | None
    _source: TokenSource | None
    _tab: str | None
    _refreshed: bool
    _used: list[bool]

    def __init__(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        token: str | None = None,
        claims: Mapping[str, Any] | None = None,
        expires_at: datetime | None = None,
        error: str | None = None,
        source: TokenSource | None = None,
        tab: str | None = None,
        refreshed: bool = False,
    ) -> None:
        if not claims:
            claims = _EMPTY
        elif not isinstance(claims, MappingProxyType):
            claims = MappingProxyType(dict(claims))
        # Immutable from the outside: every field is set once, here, below __setattr__.
        init = object.__setattr__
        init(self, "_user_id", user_id)
        init(self, "_session_id", session_id)
        init(self, "_token", token)
        init(self, "_claims", claims)  # read-only (verified tokens already carry one)
        init(self, "_expires_at", expires_at)
        init(self, "_error", error)
        init(self, "_source", source)
        init(self, "_tab", tab)
        init(self, "_refreshed", refreshed)
        init(self, "_used", [False])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("AuthState is immutable")

    @property
    def is_authenticated(self) -> bool:
        """True when a valid token identified a user."""
        self._used[0] = True
        return self._user_id is not None

    @property
    def user_id(self) -> str | None:
        """The signed-in user's id."""
        self._used[0] = True
        return self._user_id

    @property
    def session_id(self) -> str | None:
        """The current session's id."""
        self._used[0] = True
        return self._session_id

    @property
    def token(self) -> str | None:
        """The access token (JWT) for ``Authorization: Bearer`` calls."""
        self._used[0] = True
        return self._token

    @property
    def claims(self) -> Mapping[str, Any]:
        """The access token's claims."""
        self._used[0] = True
        return self._claims

    @property
    def expires_at(self) -> datetime | None:
        """When the access token expires."""
        return self._expires_at

    @property
    def error(self) -> str | None:
        """Why a presented token was rejected."""
        return self._error

    @property
    def source(self) -> TokenSource | None:
        """``"cookie"`` or ``"bearer"``."""
        return self._source

    @property
    def tab(self) -> str | None:
        """``per_tab``: the tab slot served."""
        return self._tab

    @property
    def refreshed(self) -> bool:
        """Tokens were rotated during this request."""
        return self._refreshed

    @property
    def scopes(self) -> tuple[str, ...]:
        """Starlette ``requires()`` compatibility: ``("authenticated",)`` when signed in."""
        self._used[0] = True
        return ("authenticated",) if self._user_id is not None else ()

    @property
    def was_used(self) -> bool:
        """The app read the auth state (its response depends on who is signed in)."""
        return self._used[0]

    def __repr__(self) -> str:
        return (
            f"AuthState(user_id={self._user_id!r}, session_id={self._session_id!r}, "
            f"source={self._source!r}, error={self._error!r})"
        )


class AuthUser:
    """``scope["user"]``: Starlette's ``BaseUser`` interface over an :class:`AuthState`."""

    __slots__ = ("_state",)

    def __init__(self, state: AuthState) -> None:
        self._state = state

    @property
    def is_authenticated(self) -> bool:
        """True when signed in."""
        return self._state.is_authenticated

    @property
    def display_name(self) -> str:
        """The user id (load the row with :func:`get_auth_user` for a name)."""
        return self._state.user_id or ""

    @property
    def identity(self) -> str:
        """The user id, or ``""``."""
        return self._state.user_id or ""

    @property
    def user_id(self) -> str | None:
        """The user id."""
        return self._state.user_id

    def __bool__(self) -> bool:
        return self._state.user_id is not None


def _scope_of(request: Any) -> MutableMapping[str, Any]:
    scope = getattr(request, "scope", request)
    if not isinstance(scope, MutableMapping):
        raise TypeError("expected a request object with .scope, or an ASGI scope")
    return scope


def get_auth_state(request: Any) -> AuthState:
    """The :class:`AuthState` of a request (a Starlette/FastAPI/Litestar/Quart/Django request, or
    a raw ASGI scope).

    Raises:
        RuntimeError: ``AuthMiddleware`` did not handle this request.
    """
    state = _scope_of(request).get("auth")
    if not isinstance(state, AuthState):
        raise RuntimeError(
            "no authbridge auth state on this request: wrap the app in AuthMiddleware"
        )
    return state


def get_auth_user_id(request: Any) -> str | None:
    """The signed-in user's id, or ``None``. No database access.

    Raises:
        RuntimeError: ``AuthMiddleware`` is not installed.
    """
    return get_auth_state(request).user_id


def get_auth_session_id(request: Any) -> str | None:
    """The current session's id, or ``None``. No database access.

    Raises:
        RuntimeError: ``AuthMiddleware`` is not installed.
    """
    return get_auth_state(request).session_id


def _engine_of(scope: Mapping[str, Any]) -> Auth:
    engine = scope.get(SCOPE_ENGINE)
    if engine is None:
        raise RuntimeError("no authbridge engine on this request: wrap the app in AuthMiddleware")
    return engine  # type: ignore[no-any-return]


async def get_auth_user(request: Any) -> User | None:
    """The signed-in user's ``users`` row, or ``None``: one query, cached for the request.

    Raises:
        RuntimeError: ``AuthMiddleware`` is not installed.
        StoreUnavailable: the database failed.
    """
    scope = _scope_of(request)
    user_id = get_auth_state(scope).user_id
    if user_id is None:
        return None
    if SCOPE_USER_ROW not in scope:
        scope[SCOPE_USER_ROW] = await _engine_of(scope).get_user(user_id)
    return scope[SCOPE_USER_ROW]  # type: ignore[no-any-return]


async def get_auth_session(request: Any) -> SessionInfo | None:
    """The current ``auth_sessions`` row, or ``None``: one query, cached for the request.

    Raises:
        RuntimeError: ``AuthMiddleware`` is not installed.
        StoreUnavailable: the database failed.
    """
    scope = _scope_of(request)
    session_id = get_auth_state(scope).session_id
    if session_id is None:
        return None
    if SCOPE_SESSION_ROW not in scope:
        scope[SCOPE_SESSION_ROW] = await _engine_of(scope).get_session(session_id)
    return scope[SCOPE_SESSION_ROW]  # type: ignore[no-any-return]
