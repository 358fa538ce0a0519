"""authbridge as the issuer for a Convex backend: a token from a real authbridge server passes the
checks a Convex deployment applies to a ``customJwt`` provider, run by npm ``jose`` itself
(``createRemoteJWKSet`` + ``jwtVerify``) against our JWKS endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from authbridge import Auth, AuthConfig, AuthMiddleware, SessionInfo, User
from authbridge.config import Algorithm
from authbridge.tokens import generate_private_key_pem
from tests.toolkit.databases import sqlite_url
from tests.toolkit.engines import FAST_PASSWORDS, PASSWORD
from tests.toolkit.servers import bound_socket, serve, socket_url

from .conftest import run_node


async def roles(user: User, session: SessionInfo) -> dict[str, Any]:
    return {"role": "member"}


async def home(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_a_token_from_authbridge_passes_convex_custom_jwt_checks(
    tmp_path: Path, algorithm: Algorithm
) -> None:
    sock = bound_socket()
    site = socket_url(sock)
    config = AuthConfig(
        database_url=sqlite_url(tmp_path),
        site_url=site,
        audience="convex",
        jwt_private_keys=(generate_private_key_pem(algorithm),),
        password=FAST_PASSWORDS,
    )
    auth = Auth(config, create_tables=True, claims=roles)
    app = AuthMiddleware(Starlette(routes=[Route("/", home)]), auth)
    async with (
        serve(app, sock=sock, lifespan="on") as base,
        httpx.AsyncClient(base_url=base) as client,
    ):
        signed_in = await client.post(
            "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": "signUp", "email": "ada@example.com", "password": PASSWORD},
            },
        )
        assert signed_in.status_code == 200, signed_in.text
        me = signed_in.json()
        token = (await client.post("/api/auth/token")).json()["token"]
        jwks = f"{base}/.well-known/jwks.json"
        kid = auth.keys.signing_key.kid

        verified = await run_node("convex_verify.mjs", jwks, site, "convex", algorithm, token)
        wrong_audience = await run_node("convex_verify.mjs", jwks, site, "other", algorithm, token)
        wrong_issuer = await run_node(
            "convex_verify.mjs", jwks, "https://evil.example", "convex", algorithm, token
        )
        other = "ES256" if algorithm == "RS256" else "RS256"
        wrong_algorithm = await run_node("convex_verify.mjs", jwks, site, "convex", other, token)

    assert verified["ok"] is True, verified
    assert verified["header"]["alg"] == algorithm
    assert verified["header"]["typ"] == "JWT"
    assert verified["header"]["kid"] == kid
    payload = verified["payload"]
    assert payload["sub"] == f"{me['userId']}|{me['sessionId']}"
    assert (payload["iss"], payload["aud"], payload["role"]) == (site, "convex", "member")
    assert payload["exp"] > payload["iat"]
    refused = [(r["ok"], r["code"]) for r in (wrong_audience, wrong_issuer, wrong_algorithm)]
    assert refused == [
        (False, "ERR_JWT_CLAIM_VALIDATION_FAILED"),
        (False, "ERR_JWT_CLAIM_VALIDATION_FAILED"),
        (False, "ERR_JOSE_ALG_NOT_ALLOWED"),
    ]
