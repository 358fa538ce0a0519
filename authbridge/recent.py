"""Step-up: actions that need a recent sign-in (delete the account, change the email, add a
factor).

Every session records when and how the user authenticated (``auth_sessions.auth_time`` /
``amr``); access tokens carry both (``auth_time``, ``amr`` claims), so the check needs no
database access::

    from datetime import timedelta
    from authbridge import require_recent_auth

    async def delete_account(request):
        require_recent_auth(request, timedelta(minutes=5))   # raises RecentAuthRequired
        ...

or as a route rule of the middleware::

    AuthMiddleware(app, auth, protect=["/notes/**", RecentAuth("/settings/security/**")])

A request that fails the check gets ``401 {"error": "RecentAuthRequired"}`` with an RFC 9470
step-up challenge (``WWW-Authenticate: Bearer error="insufficient_user_authentication",
max_age=300``); an HTML navigation is redirected to the re-authentication page
(:attr:`AuthConfig.reauth_path`, with ``?next=``). Signing in again there starts a fresh session.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from ._asgi import Receive, Scope, Send, json_response, redirect_response
from .errors import RecentAuthRequired
from .routing import Pattern, RouteMatcher, route_matcher
from .state import AuthState, get_auth_state

__all__ = [
    "DEFAULT_RECENT_AUTH_MAX_AGE",
    "RecentAuth",
    "is_recent",
    "reauth_location",
    "recent_auth_response",
    "require_recent_auth",
    "send_recent_auth_required",
]

DEFAULT_RECENT_AUTH_MAX_AGE = timedelta(minutes=5)
"""How recent a sign-in must be unless a check says otherwise."""


def is_recent(state: AuthState, max_age: timedelta, now: datetime) -> bool:
    """True when ``state`` is signed in and authenticated within ``max_age`` before ``now``."""
    auth_time = state.auth_time
    if not state.is_authenticated or auth_time is None:
        return False
    # A little skew between instances must not make a fresh sign-in look like the future.
    return now - max_age <= auth_time <= now + timedelta(seconds=60)


def require_recent_auth(
    request: Any, max_age: timedelta = DEFAULT_RECENT_AUTH_MAX_AGE
) -> AuthState:
    """Check that the user of ``request`` (a framework request or an ASGI scope) signed in within
    ``max_age``; returns the auth state. No database access.

    Raise it out of a handler: :class:`~authbridge.AuthMiddleware` answers it (JSON 401 with
    ``{"error": "RecentAuthRequired"}``, or a redirect to the re-authentication page for HTML)
    when the app has not started a response; with Starlette/FastAPI register
    :func:`recent_auth_response` as the exception handler.

    Raises:
        RecentAuthRequired: signed out, or the last sign-in is older than ``max_age``.
        RuntimeError: ``AuthMiddleware`` is not installed.
    """
    from .state import _engine_of, _scope_of

    scope = _scope_of(request)
    state = get_auth_state(scope)
    if not is_recent(state, max_age, _engine_of(scope).clock()):
        raise RecentAuthRequired(max_age, "this action needs a recent sign-in")
    return state


@dataclass(frozen=True, slots=True)
class RecentAuth:
    """A ``protect`` rule of :class:`~authbridge.AuthMiddleware`: these routes need a sign-in
    within ``max_age`` (which implies being signed in)."""

    patterns: Pattern | Iterable[Pattern]
    """Globs, regexes or callables (as for :func:`~authbridge.ssr.route_matcher`)."""
    max_age: timedelta = DEFAULT_RECENT_AUTH_MAX_AGE
    """How recent the sign-in must be."""
    matcher: RouteMatcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matcher", route_matcher(self.patterns))


def reauth_location(reauth_path: str, target: str) -> str:
    """The re-authentication page for a request to ``target`` (a path with its query)."""
    sep = "&" if "?" in reauth_path else "?"
    return f"{reauth_path}{sep}next={quote(target, safe='')}"


async def send_recent_auth_required(
    send: Send, max_age: timedelta, *, html: bool, location: str
) -> None:
    """Answer a failed step-up check: 303 to ``location`` for HTML, else JSON 401 with an RFC
    9470 challenge."""
    if html:
        await redirect_response(send, location)
        return
    seconds = int(max_age.total_seconds())
    challenge = (
        'Bearer realm="authbridge", error="insufficient_user_authentication", '
        f'error_description="A more recent authentication is required", max_age={seconds}'
    )
    await json_response(
        send,
        401,
        {"error": RecentAuthRequired.code},
        [(b"www-authenticate", challenge.encode()), (b"cache-control", b"private, no-store")],
    )


class _RecentAuthAnswer:
    """The ASGI response :func:`recent_auth_response` returns."""

    def __init__(self, max_age: timedelta) -> None:
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from ._request import RequestContext
        from .state import _engine_of

        config = _engine_of(scope).config
        ctx = RequestContext(scope, config.is_https_site, config.is_per_tab)
        target = ctx.public_path(ctx.path)
        query = scope.get("query_string", b"")
        if query:
            target += "?" + query.decode("latin-1")
        await send_recent_auth_required(
            send,
            self.max_age,
            html=ctx.wants_html(),
            location=reauth_location(ctx.public_path(config.reauth_page), target),
        )


def recent_auth_response(request: Any, exc: Exception) -> Any:
    """A Starlette/FastAPI exception handler for :class:`~authbridge.errors.RecentAuthRequired`
    (``exception_handlers={RecentAuthRequired: recent_auth_response}``): returns an ASGI response
    (a redirect for HTML navigations, else JSON 401)."""
    max_age = exc.max_age if isinstance(exc, RecentAuthRequired) else DEFAULT_RECENT_AUTH_MAX_AGE
    return _RecentAuthAnswer(max_age)
