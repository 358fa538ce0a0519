"""Jinja2 integration: the per-request ``auth`` view, ``install``, ``context`` and ``render``."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

import jinja2
from jinja2.runtime import Context
from jinja2.utils import missing
from markupsafe import Markup

from ..routing import route_matcher
from ..state import SCOPE_USER_ROW, AuthState, RequestLike, get_auth_state, get_auth_user
from ._helpers import auth_bootstrap, auth_token, is_authenticated, scope_of

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from ..engine import User

__all__ = ["AuthContext", "AuthView", "context", "install", "render"]

_VIEW_KEY = "authbridge.ssr.view"
_INSTALLED = "_authbridge_installed"


class _HasEnv(Protocol):
    """Starlette's ``Jinja2Templates`` (anything with an ``env``)."""

    env: jinja2.Environment


class AuthView:
    """``auth`` in templates: who is signed in for the request being rendered (read-only).

    Reading it marks the response as auth-dependent (``Cache-Control: private``, ``Vary: Cookie``).
    """

    __slots__ = ("_load_requested", "_request", "_state")

    def __init__(self, request: RequestLike) -> None:
        self._request = request
        self._state: AuthState = get_auth_state(request)
        self._load_requested = False

    @property
    def is_authenticated(self) -> bool:
        """True when a user is signed in."""
        return self._state.is_authenticated

    @property
    def user_id(self) -> str | None:
        """The signed-in user's id."""
        return self._state.user_id

    @property
    def session_id(self) -> str | None:
        """The current session's id."""
        return self._state.session_id

    @property
    def claims(self) -> Mapping[str, Any]:
        """The access token's claims (custom claims included). Jinja2 autoescapes them."""
        return self._state.claims

    @property
    def state(self) -> AuthState:
        """The underlying :class:`~authbridge.AuthState`."""
        return self._state

    @jinja2.pass_context
    def user(self, template_context: Context | None = None) -> User | Awaitable[User | None] | None:
        """The ``users`` row, or ``None`` when signed out (no query then).

        In an async environment the row is loaded on first use (Jinja2 awaits it); in a sync
        one it must have been loaded earlier in the request. Either way: one query at most.

        Raises:
            RuntimeError: sync rendering and the row was not loaded beforehand.
        """
        if self._state.user_id is None:
            return None
        scope = scope_of(self._request)
        if SCOPE_USER_ROW in scope:
            return cast("User | None", scope[SCOPE_USER_ROW])
        if template_context is not None and template_context.environment.is_async:
            return get_auth_user(self._request)
        hint = (
            "did you forget `await` before ssr.context(request, load_user=True)? "
            if self._load_requested
            else ""
        )
        raise RuntimeError(
            "auth.user() needs the users row, which loads asynchronously: "
            + hint
            + "load it in the handler before rendering (`await ssr.context(request, "
            "load_user=True)` or `await authbridge.get_auth_user(request)`), or render with an "
            "async Jinja2 environment (enable_async=True) through `await ssr.render(...)`"
        )

    async def load_user(self) -> User | None:
        """Load (once per request) and return the ``users`` row.

        Raises:
            StoreUnavailable: the database failed.
        """
        return await get_auth_user(self._request)

    def __repr__(self) -> str:
        return f"AuthView({self._state!r})"


def _view_of(request: RequestLike) -> AuthView:
    """The request's view, shared by every template (base, includes) rendered for it."""
    scope = scope_of(request)
    view = scope.get(_VIEW_KEY)
    if not isinstance(view, AuthView):
        view = scope[_VIEW_KEY] = AuthView(request)
    return view


class AuthContext(dict[str, Any]):
    """A template context ``{"request": ..., "auth": AuthView}``.

    ``await`` it (built with ``load_user=True``) to load the ``users`` row first, so sync
    templates can call ``auth.user()``.
    """

    def __init__(self, request: RequestLike, *, load_user: bool) -> None:
        view = _view_of(request)
        super().__init__(request=request, auth=view)
        self._load_user = load_user
        if load_user:
            view._load_requested = True

    def __await__(self) -> Generator[Any, None, AuthContext]:
        return self._loaded().__await__()

    async def _loaded(self) -> AuthContext:
        if self._load_user:
            await self["auth"].load_user()
        return self


def context(request: RequestLike, *, load_user: bool = False) -> AuthContext:
    """The template variables for ``request``: ``request`` and ``auth``.

    ``template.render(ssr.context(request))`` renders with no query;
    ``await ssr.context(request, load_user=True)`` also loads the ``users`` row.

    Raises:
        RuntimeError: ``AuthMiddleware`` did not handle this request.
    """
    return AuthContext(request, load_user=load_user)


def _request_in(template_context: Context) -> Any:
    request = template_context.get("request")
    if request is None:
        raise RuntimeError(
            "authbridge template helpers need `request` in the template context: render with "
            "authbridge.ssr.context(request) (Starlette's TemplateResponse adds it)"
        )
    return request


@jinja2.pass_context
def _auth_bootstrap_global(template_context: Context, nonce: str | None = None) -> Markup:
    return auth_bootstrap(_request_in(template_context), nonce=nonce)


@jinja2.pass_context
def _auth_token_global(template_context: Context) -> str | None:
    return auth_token(_request_in(template_context))


@jinja2.pass_context
def _is_authenticated_global(template_context: Context) -> bool:
    return is_authenticated(_request_in(template_context))


def _auth_context_class(base: type[Context]) -> type[Context]:
    """``base`` plus one rule: an undefined ``auth`` is the view of the context's ``request``.

    Overriding ``resolve_or_missing`` is Jinja2's documented hook for custom lookups; it makes
    ``auth`` work in every template, include and base template, whoever builds the context.
    """

    def resolve_or_missing(self: Context, key: str) -> Any:
        value = base.resolve_or_missing(self, key)
        if value is missing and key == "auth":
            request = base.resolve_or_missing(self, "request")
            if request is missing or request is None:
                return self.environment.undefined(
                    hint="`auth` needs `request` in the template context: render with "
                    "authbridge.ssr.context(request)",
                    name="auth",
                )
            return _view_of(request)
        return value

    return type(
        f"Auth{base.__name__}",
        (base,),
        {"resolve_or_missing": resolve_or_missing, _INSTALLED: True},
    )


def install(templates: jinja2.Environment | _HasEnv) -> jinja2.Environment:
    """Add ``auth`` and the helpers to a Jinja2 environment or Starlette ``Jinja2Templates``.

    Idempotent. Returns the environment. Turn autoescaping on (Starlette's ``Jinja2Templates``
    does): user names and claims are user input.
    """
    env = templates if isinstance(templates, jinja2.Environment) else templates.env
    env.globals.update(
        auth_bootstrap=_auth_bootstrap_global,
        auth_token=_auth_token_global,
        is_authenticated=_is_authenticated_global,
        route_matcher=route_matcher,
    )
    if not getattr(env.context_class, _INSTALLED, False):
        env.context_class = _auth_context_class(env.context_class)
    return env


async def render(
    templates: jinja2.Environment | _HasEnv,
    request: RequestLike,
    name: str,
    variables: Mapping[str, Any] | None = None,
) -> str:
    """Render template ``name`` for ``request``, awaiting it in an async environment (where
    ``auth.user()`` loads lazily). Runs ``Jinja2Templates`` context processors, like Starlette.

    Raises:
        RuntimeError: ``AuthMiddleware`` did not handle this request (when a template reads auth).
        jinja2.TemplateError: the template failed.
    """
    env = templates if isinstance(templates, jinja2.Environment) else templates.env
    values: dict[str, Any] = {"request": request, **(variables or {})}
    for processor in getattr(templates, "context_processors", ()):
        values.update(processor(request))
    template = env.get_template(name)
    if env.is_async:
        return await template.render_async(values)
    return template.render(values)
