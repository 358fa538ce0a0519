"""authbridge scenarios: the extension point for the library's own benchmarks (empty for now).

``bench/__main__.py`` concatenates :func:`scenarios` after the baselines for the in-process
table, and :func:`loopback_scenarios` after the baseline loopback scenarios.  Each entry is a
:class:`bench.harness.Scenario` (name + async factory returning ``(asgi_app, scope_factory)``,
or a :class:`bench.harness.Prepared` when cleanup or response observation is needed).

The app under test is built through the public API only::

    from authbridge import Auth, AuthConfig, AuthMiddleware

    app = AuthMiddleware(inner_app, Auth(AuthConfig(database_url=...)))

with ``inner_app`` the same bare Starlette app as the reference (``bench.apps.make_bare_app``)
and the database a temporary SQLite file created by the factory and removed by ``aclose``.

Scenarios to add here (all ``GET`` with a small plain-text/HTML body, ``expect_status`` set):

* ``authbridge-anonymous``: no cookie, no header; the middleware resolves an anonymous user.
* ``authbridge-cookie-warm``: a signed-in browser sending its session/access cookie, with all
  caches warm (the steady-state cost of an authenticated request).
* ``authbridge-first-sight``: a never-seen visitor every request (the scope factory hands out a
  fresh/unknown cookie or none, so per-visitor state is created each time).
* ``authbridge-bearer``: ``Authorization: Bearer <short-lived JWT>``, as an API client would send.
* ``authbridge-refresh``: an expired access token plus a rotating refresh token, so each request
  performs a refresh; rotating tokens are single-use, so use ``Prepared.observe`` to capture the
  ``Set-Cookie`` of each response and feed it to the next scope.
* ``authbridge-ssr-page`` / ``authbridge-ssr-page-anonymous``: a server-rendered page using the
  SSR helpers, with and without a signed-in user.

Loopback counterparts are :class:`bench.loopback.LoopbackScenario` entries: a uvicorn import
string inside ``bench/`` (use ``factory=True`` and ``setup`` to pass a database URL and the
cookie/bearer header through ``LoopbackSetup``).
"""

from __future__ import annotations

from bench.harness import Scenario
from bench.loopback import LoopbackScenario


def scenarios() -> list[Scenario]:
    """In-process authbridge scenarios (none yet)."""
    return []


def loopback_scenarios() -> list[LoopbackScenario]:
    """Loopback (uvicorn) authbridge scenarios (none yet)."""
    return []
