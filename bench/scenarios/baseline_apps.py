"""Plain Starlette apps used as baselines, in-process and behind uvicorn.

Importable by uvicorn as ``bench.scenarios.baseline_apps:bare_app`` and ``...:jwt_app_from_env``
(the latter with ``--factory``; it reads its verification key from the environment).
"""

from __future__ import annotations

import os

import jwt
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    SimpleUser,
    requires,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bench.scenarios.keys import AUDIENCE, ISSUER, PublicKey, load_public_pem

ENV_PUBLIC_PEM = "BENCH_JWT_PUBLIC_PEM"
ENV_ALGORITHM = "BENCH_JWT_ALGORITHM"


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello, world")


def make_bare_app() -> Starlette:
    return Starlette(routes=[Route("/", hello)])


bare_app = make_bare_app()


class JWTBackend(AuthenticationBackend):
    """Bearer-token backend in the style of Starlette's authentication docs, using PyJWT."""

    def __init__(self, public_key: PublicKey, algorithm: str) -> None:
        self.public_key = public_key  # parsed once at startup, not per request
        self.algorithms = [algorithm]

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        if "Authorization" not in conn.headers:
            return None
        auth = conn.headers["Authorization"]
        try:
            scheme, token = auth.split()
        except ValueError as exc:
            raise AuthenticationError("Invalid authorization header") from exc
        if scheme.lower() != "bearer":
            return None
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=self.algorithms,
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError("Invalid token") from exc
        return AuthCredentials(["authenticated"]), SimpleUser(str(claims["sub"]))


@requires("authenticated")
async def whoami(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hello, {request.user.display_name}")


def make_jwt_app(public_key: PublicKey, algorithm: str) -> Starlette:
    return Starlette(
        routes=[Route("/", whoami)],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=JWTBackend(public_key, algorithm))
        ],
    )


def jwt_app_from_env() -> Starlette:
    """uvicorn ``--factory`` entry point: key and algorithm come from the environment."""
    return make_jwt_app(load_public_pem(os.environ[ENV_PUBLIC_PEM]), os.environ[ENV_ALGORITHM])
