"""FastAPI + authx baseline (imported lazily: authx is an optional bench dependency)."""

from __future__ import annotations

from typing import Literal

from authx import AuthX, AuthXConfig, TokenPayload
from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse

from bench.scenarios.keys import AUDIENCE, ISSUER, SUBJECT, Algorithm, keypair

Location = Literal["headers", "cookies"]


def build(algorithm: Algorithm, location: Location) -> tuple[FastAPI, AuthX[TokenPayload], str]:
    """Return ``(app, authx, access_token)``; ``GET /`` requires a valid access token."""
    pair = keypair(algorithm)
    config = AuthXConfig(
        JWT_ALGORITHM=algorithm,
        JWT_PRIVATE_KEY=pair.private_pem,
        JWT_PUBLIC_KEY=pair.public_pem,
        JWT_TOKEN_LOCATION=[location],
        JWT_ENCODE_ISSUER=ISSUER,
        JWT_DECODE_ISSUER=ISSUER,
        JWT_ENCODE_AUDIENCE=AUDIENCE,
        JWT_DECODE_AUDIENCE=AUDIENCE,
        JWT_COOKIE_SECURE=False,
    )
    security: AuthX[TokenPayload] = AuthX(config=config)
    app = FastAPI()
    security.handle_errors(app)
    token_required = Depends(security.access_token_required)

    @app.get("/")
    async def index(payload: TokenPayload = token_required) -> PlainTextResponse:
        return PlainTextResponse(f"hello, {payload.sub}")

    return app, security, security.create_access_token(uid=SUBJECT)
