"""What is measured: the apps, the requests made to them, and the baselines.

* ``baselines`` - bare Starlette (the 1.0x reference), bare FastAPI, Starlette's
  ``AuthenticationMiddleware`` + PyJWT, FastAPI + authx, fastapi-users; their apps are in
  ``baseline_apps``, ``baseline_authx`` and ``baseline_fastapi_users``;
* ``authbridge_requests`` - the same app behind ``AuthMiddleware``, requested as a browser or an
  API client would (cookies, bearer, never-seen token, rotation, SSR page, large tables); the app
  is in ``authbridge_app``;
* ``databases``, ``keys``, ``remote_issuer`` - throwaway databases with a signed-up user, signing
  keys and tokens, a JWKS-serving issuer (also used by the throughput and growth runners).

To add a scenario, return it from ``scenarios()`` (in-process) or ``loopback_scenarios()``
(uvicorn) of one of the two modules above; :func:`inprocess` and :func:`loopback` list them all,
in report order.  This module imports nothing heavy: uvicorn imports the apps through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.runners.inprocess import Scenario
    from bench.runners.loopback import LoopbackScenario

BASELINE = "starlette-bare"
"""Name of the 1.0x reference scenario (in-process and loopback)."""


def inprocess() -> list[Scenario]:
    """Every in-process scenario: the baselines first, then authbridge's."""
    from bench.scenarios import authbridge_requests, baselines

    return [*baselines.scenarios(), *authbridge_requests.scenarios()]


def loopback() -> list[LoopbackScenario]:
    """Every loopback (uvicorn) scenario: the baselines first, then authbridge's."""
    from bench.scenarios import authbridge_requests, baselines

    return [*baselines.loopback_scenarios(), *authbridge_requests.loopback_scenarios()]
