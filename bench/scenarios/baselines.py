"""Baseline scenarios: what authbridge is compared against.

All of them serve ``GET /`` with a small plain-text body.  JWT baselines verify an asymmetric
signature plus ``iss``/``aud``/``exp`` on every request, as authbridge does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Literal

from bench.runners.inprocess import (
    ASGIApp,
    Prepared,
    Scenario,
    ScenarioUnavailable,
    ScopeFactory,
    http_scope,
)
from bench.runners.loopback import LoopbackScenario, LoopbackSetup
from bench.scenarios import BASELINE, baseline_apps
from bench.scenarios.baseline_apps import ENV_ALGORITHM, ENV_PUBLIC_PEM, make_bare_app, make_jwt_app
from bench.scenarios.keys import Algorithm, keypair, mint


async def _starlette_bare() -> tuple[ASGIApp, ScopeFactory]:
    return make_bare_app(), http_scope("/")


async def _fastapi_bare() -> tuple[ASGIApp, ScopeFactory]:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI()

    @app.get("/")
    async def index() -> PlainTextResponse:
        return PlainTextResponse("hello, world")

    return app, http_scope("/")


def _starlette_jwt(algorithm: Algorithm) -> Scenario:
    async def factory() -> tuple[ASGIApp, ScopeFactory]:
        pair = keypair(algorithm)
        return make_jwt_app(pair.public_key, algorithm), http_scope("/", bearer=mint(pair))

    return Scenario(
        f"starlette-authmw-pyjwt-{algorithm.lower()}",
        factory,
        description=f"Starlette AuthenticationMiddleware + PyJWT {algorithm} bearer",
    )


def _authx(algorithm: Algorithm, location: Literal["headers", "cookies"]) -> Scenario:
    async def factory() -> tuple[ASGIApp, ScopeFactory]:
        try:
            from bench.scenarios import baseline_authx
        except ImportError as exc:
            raise ScenarioUnavailable(f"authx not importable ({exc})") from exc
        app, security, token = baseline_authx.build(algorithm, location)
        if location == "cookies":
            cookie = security.config.JWT_ACCESS_COOKIE_NAME
            return app, http_scope("/", cookies=[(cookie, token)])
        return app, http_scope("/", bearer=token)

    kind = "cookie" if location == "cookies" else "bearer"
    return Scenario(
        f"fastapi-authx-{kind}-{algorithm.lower()}",
        factory,
        description=f"FastAPI + authx dependency, {algorithm} token in {kind}",
    )


def _fastapi_users(algorithm: Algorithm) -> Scenario:
    async def factory() -> Prepared:
        try:
            from bench.scenarios import baseline_fastapi_users
        except ImportError as exc:
            raise ScenarioUnavailable(f"fastapi-users not importable ({exc})") from exc
        directory = tempfile.mkdtemp(prefix="authbridge-bench-")
        try:
            built = await baseline_fastapi_users.build(
                os.path.join(directory, "users.sqlite3"), algorithm
            )
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise

        async def aclose() -> None:
            try:
                await built.engine.dispose()
            finally:
                shutil.rmtree(directory, ignore_errors=True)

        return Prepared(built.app, http_scope("/", bearer=built.token), aclose)

    return Scenario(
        f"fastapi-users-jwt-{algorithm.lower()}",
        factory,
        description=f"FastAPI + fastapi-users current_user, {algorithm} JWT bearer, aiosqlite",
    )


def scenarios() -> list[Scenario]:
    return [
        Scenario(BASELINE, _starlette_bare, description="bare Starlette, GET / -> text"),
        Scenario("fastapi-bare", _fastapi_bare, description="bare FastAPI, GET / -> text"),
        _starlette_jwt("ES256"),
        _starlette_jwt("RS256"),
        _authx("ES256", "headers"),
        _authx("ES256", "cookies"),
        _fastapi_users("ES256"),
    ]


# --------------------------------------------------------------------------------------------
# Loopback (uvicorn) baselines


async def _jwt_loopback_setup() -> LoopbackSetup:
    pair = keypair("ES256")
    return LoopbackSetup(
        env={ENV_PUBLIC_PEM: pair.public_pem, ENV_ALGORITHM: pair.algorithm},
        headers=[("authorization", f"Bearer {mint(pair)}")],
    )


def loopback_scenarios() -> list[LoopbackScenario]:
    return [
        LoopbackScenario(BASELINE, f"{baseline_apps.__name__}:bare_app"),
        LoopbackScenario(
            "starlette-authmw-pyjwt-es256",
            f"{baseline_apps.__name__}:jwt_app_from_env",
            factory=True,
            setup=_jwt_loopback_setup,
        ),
    ]
