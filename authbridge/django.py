"""Django integration: ``request.user`` and ``request.auth`` from authbridge.

Serve Django through ASGI with the ASGI application wrapped in :class:`~authbridge.AuthMiddleware`
(``asgi.py``), then list this middleware in ``settings.MIDDLEWARE`` in place of Django's
``AuthenticationMiddleware``::

    # asgi.py
    from django.core.asgi import get_asgi_application
    from authbridge import Auth, AuthMiddleware
    application = AuthMiddleware(get_asgi_application(), Auth())

    # settings.py
    MIDDLEWARE = [..., "authbridge.django.AuthenticationMiddleware", ...]
    LOGIN_URL = "/signin"

``request.user`` is then an :class:`AuthbridgeUser` (``is_authenticated``, ``is_anonymous``,
``pk`` / ``id`` = the authbridge user id), so ``login_required``, ``LoginRequiredMixin`` and
``{% if user.is_authenticated %}`` work unchanged, in sync and async views. ``request.auth`` is
the :class:`~authbridge.AuthState`. Django's own users, groups and permissions are not involved:
every permission check answers ``False``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase

from .cookies import cookie_names
from .engine import Auth
from .errors import TokenError
from .state import AuthState, AuthUser, ErrorReason, TokenSource

__all__ = ["AuthbridgeUser", "AuthenticationMiddleware"]

GetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class AuthbridgeUser:
    """``request.user``: the interface Django's auth helpers and templates read."""

    __slots__ = ("_state",)

    is_staff = False
    is_superuser = False

    def __init__(self, state: AuthState) -> None:
        self._state = state

    @property
    def is_authenticated(self) -> bool:
        """True when signed in."""
        return self._state.is_authenticated

    @property
    def is_anonymous(self) -> bool:
        """True when nobody is signed in."""
        return not self._state.is_authenticated

    @property
    def is_active(self) -> bool:
        """Signed-in users are active (authbridge ends the sessions of users it disables)."""
        return self._state.is_authenticated

    @property
    def pk(self) -> str | None:
        """The authbridge user id, or ``None``."""
        return self._state.user_id

    @property
    def id(self) -> str | None:
        """The authbridge user id, or ``None``."""
        return self._state.user_id

    @property
    def session_id(self) -> str | None:
        """The current session id, or ``None``."""
        return self._state.session_id

    def get_username(self) -> str:
        """The user id (load the row with ``await get_auth_user(request)`` for an email)."""
        return self._state.user_id or ""

    def has_perm(self, perm: str, obj: object = None) -> bool:
        """Django permissions are not managed by authbridge: always ``False``."""
        return False

    def has_perms(self, perm_list: Iterable[str], obj: object = None) -> bool:
        """Always ``False`` (see :meth:`has_perm`)."""
        return False

    def has_module_perms(self, app_label: str) -> bool:
        """Always ``False`` (see :meth:`has_perm`)."""
        return False

    def __str__(self) -> str:
        return self._state.user_id or "AnonymousUser"

    def __repr__(self) -> str:
        return f"AuthbridgeUser({self._state.user_id!r})"


def _attach(request: HttpRequest) -> None:
    scope: Any = getattr(request, "scope", None)
    state = scope.get("auth") if isinstance(scope, dict) else None
    if not isinstance(state, AuthState):
        state = _verify_without_middleware(request)
        # Django's test clients: give the get_auth_* helpers the state in a scope (the
        # AsyncClient's own, or a minimal one for the WSGI Client's request).
        if isinstance(scope, dict):
            scope["auth"], scope["user"] = state, AuthUser(state)
        else:
            request.scope = {"type": "http", "auth": state, "user": AuthUser(state)}
    request.auth = state
    request.user = AuthbridgeUser(state)


def _verify_without_middleware(request: HttpRequest) -> AuthState:
    """Django's test clients call the handler directly, past ``AuthMiddleware``: with
    ``settings.AUTHBRIDGE_AUTH`` (the dotted path of the open engine) the access token is
    verified here (no refresh, no auth endpoints)."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    path = getattr(settings, "AUTHBRIDGE_AUTH", None)
    engine = import_string(path) if isinstance(path, str) else None
    if not isinstance(engine, Auth):
        raise ImproperlyConfigured(
            "authbridge.django.AuthenticationMiddleware needs the ASGI application wrapped in "
            "authbridge.AuthMiddleware (see authbridge.django); for Django's test clients, set "
            "settings.AUTHBRIDGE_AUTH to the dotted path of the app's Auth"
        )
    header = request.META.get("HTTP_AUTHORIZATION", "")
    source: TokenSource = "bearer"
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    if token is None:
        source = "cookie"
        names = cookie_names(request.is_secure())
        token = request.COOKIES.get(names.jwt)
    if not token:
        return AuthState.anonymous()
    if not engine.is_open:
        raise ImproperlyConfigured(f"{path} is not open: await auth.open() in the test setup")
    try:
        access = engine.verify_token(token)
    except TokenError as exc:
        return AuthState(error=cast("ErrorReason", exc.reason), source=source)
    return AuthState(
        user_id=access.user_id,
        session_id=access.session_id,
        token=access.token,
        claims=access.claims,
        expires_at=access.expires_at,
        source=source,
    )


class AuthenticationMiddleware:
    """Set ``request.user`` (:class:`AuthbridgeUser`) and ``request.auth`` (the state).

    Works in Django's sync and async middleware chains.

    Raises:
        ImproperlyConfigured: on a request that did not pass through ``AuthMiddleware`` while
            ``settings.AUTHBRIDGE_AUTH`` names no open engine.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)
        _attach(request)
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        _attach(request)
        response = self.get_response(request)
        return await response
