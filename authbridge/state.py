"""Per-request auth state and the helpers that read it (``get_auth_user_id`` & co).

The middleware puts an immutable :class:`AuthState` in ``scope["auth"]`` and a Starlette-compatible
:class:`AuthUser` in ``scope["user"]``, so ``request.user.is_authenticated`` and
``starlette.authentication.requires`` work unchanged. Reading the state marks the response as
auth-dependent, which is what adds ``Vary: Cookie`` / ``Cache-Control: private`` to it.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from .engine import Auth, User
    from .sessions import SessionInfo

__all__ = [
    "AuthState",
    "AuthUser",
    "ErrorReason",
    "HasScope",
    "RequestLike",
    "TokenSource",
    "get_auth_session",
    "get_auth_session_id",
    "get_auth_state",
    "get_auth_user",
    "get_auth_user_id",
]

TokenSource = Literal["cookie", "bearer"]


class HasScope(Protocol):
    """Anything carrying an ASGI scope: a Starlette/FastAPI, Litestar, Quart or Django (ASGI)
    request or WebSocket."""

    @property
    def scope(self) -> Mapping[str, Any]: ...


if TYPE_CHECKING:
    RequestLike = HasScope | MutableMapping[str, Any]
else:
    # FastAPI reads the helpers' signatures at runtime to decide what to inject: naming
    # Starlette's HTTPConnection here (when installed) makes `Depends(get_auth_user)` receive the
    # request instead of asking for a "request" query parameter (a 422). Type checkers see the
    # protocol above.
    try:
        from starlette.requests import HTTPConnection as RequestLike
    except ImportError:  # pragma: no cover - Starlette is not installed
        RequestLike = HasScope | MutableMapping[str, Any]
"""What the ``get_auth_*`` helpers accept: a request object with ``.scope``, or the scope."""

ErrorReason = Literal[
    "malformed",
    "invalid_signature",
    "unknown_key",
    "invalid_algorithm",
    "invalid_issuer",
    "invalid_audience",
    "invalid_claims",
    "expired",
    "not_yet_valid",
    "revoked",
    "invalid_refresh_token",
    "refresh_token_reused",
    "cross_site",
    "unavailable",
    "refresh_failed",
]
"""Why a request that presented credentials is anonymous: what was wrong with its access token
(:attr:`TokenError.reason <authbridge.TokenError>`) or refresh token; ``"cross_site"`` (cookies of a
foreign state-changing request or WebSocket are ignored); ``"unavailable"`` (no database);
``"refresh_failed"`` (an unexpected error while rotating)."""

SCOPE_ENGINE = "authbridge.engine"
SCOPE_USER_ROW = "authbridge.user_row"
SCOPE_SESSION_ROW = "authbridge.session_row"
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_ANONYMOUS: tuple[Any, ...] = (None, None, None, _EMPTY, None, None, None, None, False)


class AuthState:
    """Who is signed in for this request (read-only).

    Attributes:
        user_id, session_id: the signed-in user and session, or ``None``.
        token: the verified access token (the JWT), or ``None``.
        claims: the token's claims (read-only mapping).
        issuer: the token's ``iss``: this site, or a trusted issuer.
        expires_at: when the access token expires.
        auth_time, amr: when and how the user last authenticated in this session.
        error: why presented credentials were not accepted (an :data:`ErrorReason`), or
            ``None``.
        source: where the token came from: ``"cookie"`` or ``"bearer"``.
        tab: ``per_tab`` mode: the tab slot this request was served for.
        refreshed: the middleware rotated the tokens during this request.
    """

    # Two slots, set once: a tuple of the fields and a one-item "was read" flag. Building a state
    # is on every request's path, so it costs two attribute writes, not ten. The public fields
    # are read-only properties.
    __slots__ = ("_f", "_used")
    _f: tuple[Any, ...]
    _used: list[bool]

    def __init__(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        token: str | None = None,
        claims: Mapping[str, Any] | None = None,
        expires_at: datetime | None = None,
        error: ErrorReason | None = None,
        source: TokenSource | None = None,
        tab: str | None = None,
        refreshed: bool = False,
    ) -> None:
        if not claims:
            claims = _EMPTY
        elif not isinstance(claims, MappingProxyType):
            claims = MappingProxyType(dict(claims))  # verified tokens already carry one
        self._f = (user_id, session_id, token, claims, expires_at, error, source, tab, refreshed)
        self._used = [False]

    @classmethod
    def of(
        cls,
        user_id: str | None,
        session_id: str | None,
        token: str | None,
        claims: Mapping[str, Any],
        expires_at: datetime | None,
        error: ErrorReason | None = None,
        source: TokenSource | None = None,
        tab: str | None = None,
        refreshed: bool = False,
    ) -> AuthState:
        """Positional constructor for the middleware's hot path (``claims`` must be read-only)."""
        state = object.__new__(cls)
        state._f = (user_id, session_id, token, claims, expires_at, error, source, tab, refreshed)
        state._used = [False]
        return state

    @classmethod
    def anonymous(cls) -> AuthState:
        """A signed-out state with no error (the cheapest one to build)."""
        state = object.__new__(cls)
        state._f = _ANONYMOUS
        state._used = [False]
        return state

    @property
    def is_authenticated(self) -> bool:
        """True when a valid token identified a user."""
        self._used[0] = True
        return self._f[0] is not None

    @property
    def user_id(self) -> str | None:
        """The signed-in user's id."""
        self._used[0] = True
        return self._f[0]  # type: ignore[no-any-return]

    @property
    def session_id(self) -> str | None:
        """The current session's id."""
        self._used[0] = True
        return self._f[1]  # type: ignore[no-any-return]

    @property
    def token(self) -> str | None:
        """The access token (JWT) for ``Authorization: Bearer`` calls."""
        self._used[0] = True
        return self._f[2]  # type: ignore[no-any-return]

    @property
    def claims(self) -> Mapping[str, Any]:
        """The access token's claims (read-only)."""
        self._used[0] = True
        return self._f[3]  # type: ignore[no-any-return]

    @property
    def issuer(self) -> str | None:
        """Who issued the token: this site, or a trusted issuer (``AUTHBRIDGE_TRUSTED_ISSUERS``)."""
        self._used[0] = True
        iss = self._f[3].get("iss")
        return iss if isinstance(iss, str) else None

    @property
    def auth_time(self) -> datetime | None:
        """When the user last authenticated in this session (the token's ``auth_time``), or
        ``None`` (signed out, or a token that does not say)."""
        self._used[0] = True
        value = self._f[3].get("auth_time")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**34:
            return None
        return datetime.fromtimestamp(value, timezone.utc)

    @property
    def amr(self) -> tuple[str, ...]:
        """How the user authenticated (the token's ``amr``: ``("pwd",)``, ``("hwk", "user")``,
        ``("pwd", "otp")``, ...), or ``()``."""
        self._used[0] = True
        value = self._f[3].get("amr")
        if not isinstance(value, list):
            return ()
        return tuple(v for v in value if isinstance(v, str))

    @property
    def expires_at(self) -> datetime | None:
        """When the access token expires."""
        return self._f[4]  # type: ignore[no-any-return]

    @property
    def error(self) -> ErrorReason | None:
        """Why presented credentials were not accepted."""
        return self._f[5]  # type: ignore[no-any-return]

    @property
    def source(self) -> TokenSource | None:
        """``"cookie"`` or ``"bearer"``."""
        return self._f[6]  # type: ignore[no-any-return]

    @property
    def tab(self) -> str | None:
        """``per_tab``: the tab slot served."""
        return self._f[7]  # type: ignore[no-any-return]

    @property
    def refreshed(self) -> bool:
        """Tokens were rotated during this request."""
        return self._f[8]  # type: ignore[no-any-return]

    @property
    def scopes(self) -> tuple[str, ...]:
        """Starlette ``requires()`` compatibility: ``("authenticated",)`` when signed in."""
        self._used[0] = True
        return ("authenticated",) if self._f[0] is not None else ()

    @property
    def was_used(self) -> bool:
        """The app read the auth state (its response depends on who is signed in)."""
        return self._used[0]

    def __repr__(self) -> str:
        return (
            f"AuthState(user_id={self._f[0]!r}, session_id={self._f[1]!r}, "
            f"source={self._f[6]!r}, error={self._f[5]!r})"
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


def _scope_of(request: RequestLike) -> MutableMapping[str, Any]:
    scope: Any = getattr(request, "scope", request)
    if type(scope) is dict:  # the usual case; the ABC check below is ten times slower
        return scope
    if not isinstance(scope, MutableMapping):
        raise TypeError("expected a request object with .scope, or an ASGI scope")
    return scope


def get_auth_state(request: RequestLike) -> AuthState:
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


def get_auth_user_id(request: RequestLike) -> str | None:
    """The signed-in user's id, or ``None``. No database access.

    Raises:
        RuntimeError: ``AuthMiddleware`` is not installed.
    """
    return get_auth_state(request).user_id


def get_auth_session_id(request: RequestLike) -> str | None:
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


def _is_foreign(scope: Mapping[str, Any], state: AuthState) -> bool:
    """A trusted issuer's token: its ids are not rows of our tables."""
    trusted = _engine_of(scope).trusted_issuers
    return trusted is not None and trusted.issued(state)


async def get_auth_user(request: RequestLike) -> User | None:
    """The signed-in user's ``users`` row, or ``None``: one query, cached for the request.
    ``None`` too for a trusted issuer's token (its user is not one of our rows).

    Raises:
        RuntimeError: ``AuthMiddleware`` is not installed.
        StoreUnavailable: the database failed.
    """
    scope = _scope_of(request)
    state = get_auth_state(scope)
    user_id = state.user_id
    if user_id is None or _is_foreign(scope, state):
        return None
    if SCOPE_USER_ROW not in scope:
        scope[SCOPE_USER_ROW] = await _engine_of(scope).get_user(user_id)
    return scope[SCOPE_USER_ROW]  # type: ignore[no-any-return]


async def get_auth_session(request: RequestLike) -> SessionInfo | None:
    """The current ``auth_sessions`` row, or ``None``: one query, cached for the request.

    Raises:
        RuntimeError: ``AuthMiddleware`` is not installed.
        StoreUnavailable: the database failed.
    """
    scope = _scope_of(request)
    state = get_auth_state(scope)
    session_id = state.session_id
    if session_id is None or _is_foreign(scope, state):
        return None
    if SCOPE_SESSION_ROW not in scope:
        scope[SCOPE_SESSION_ROW] = await _engine_of(scope).get_session(session_id)
    return scope[SCOPE_SESSION_ROW]  # type: ignore[no-any-return]
