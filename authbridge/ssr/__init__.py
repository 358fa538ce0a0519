"""Server-side rendering: Jinja2 integration and the Convex Auth Next.js helpers.

=====================================  =============================================
Convex Auth / Next.js                  ``authbridge.ssr``
=====================================  =============================================
``convexAuthNextjsToken()``            :func:`auth_token`
``isAuthenticatedNextjs()``            :func:`is_authenticated` (no network call)
``createRouteMatcher([...])``          :func:`route_matcher`
``nextjsMiddlewareRedirect(req, p)``   :func:`redirect`
``fetchQuery(..., {token})``           :func:`http_client`
``ConvexAuthNextjsServerProvider``     ``{{ auth_bootstrap() }}`` in the base template
=====================================  =============================================

:func:`install` prepares a ``jinja2.Environment`` (or Starlette's ``Jinja2Templates``): every
template rendered with ``request`` in its context sees ``auth`` (an :class:`AuthView`) and the
globals ``auth_bootstrap()``, ``auth_token()``, ``is_authenticated()`` and ``route_matcher``.
Apps that build their own context use :func:`context`.

Loading the ``users`` row is a database query, and a query is async. ``auth.user()`` therefore
costs at most one query per request (the row is cached on the request) and none when no template
calls it:

* async environments (``enable_async=True``, rendered with :func:`render`): ``auth.user()`` loads
  the row on first use and Jinja2 awaits it — fully lazy;
* sync environments (Starlette's ``TemplateResponse`` renders synchronously, on the event loop, so
  it cannot wait for the database): ``auth.user()`` returns the row loaded earlier in the request
  (``await ssr.context(request, load_user=True)``, ``await get_auth_user(request)``, a FastAPI
  dependency) and raises a ``RuntimeError`` naming these fixes when it was not loaded.
"""

from __future__ import annotations

from ..routing import RouteMatcher, route_matcher
from ._helpers import (
    STATE_ELEMENT_ID,
    auth_bootstrap,
    auth_token,
    bootstrap_state,
    http_client,
    is_authenticated,
    redirect,
)
from ._jinja import AuthContext, AuthView, context, install, render

__all__ = [
    "STATE_ELEMENT_ID",
    "AuthContext",
    "AuthView",
    "RouteMatcher",
    "auth_bootstrap",
    "auth_token",
    "bootstrap_state",
    "context",
    "http_client",
    "install",
    "is_authenticated",
    "redirect",
    "render",
    "route_matcher",
]
