"""A real JWKS-serving issuer for tests: a small ASGI app served by uvicorn on 127.0.0.1.

It publishes OpenID metadata and a key set, mints tokens with its keys, rotates keys, counts the
requests it answers, and can be told to fail (HTTP 503), to answer slowly, or to set any
``Cache-Control`` header — so the JWKS cache is tested against real HTTP, not a mock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.toolkit.servers import serve

Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


@dataclass
class IssuerKey:
    """One signing key of the test issuer."""

    private_key: Any
    alg: str
    kid: str | None

    def public_jwk(self) -> dict[str, Any]:
        if self.alg.startswith("ES"):
            jwk = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        jwk.update(use="sig", alg=self.alg)
        if self.kid is not None:
            jwk["kid"] = self.kid
        return jwk


def new_key(alg: str = "RS256", kid: str | Literal["auto"] | None = "auto") -> IssuerKey:
    """A fresh key for ``alg`` (RS256 or ES256); ``kid="auto"`` names it randomly."""
    private: Any
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return IssuerKey(private, alg, uuid.uuid4().hex[:12] if kid == "auto" else kid)


@dataclass
class TestIssuer:
    """The issuer's state; tests change it between requests."""

    keys: list[IssuerKey] = field(default_factory=list)
    url: str = ""
    cache_control: str | None = "public, max-age=300"
    mode: Literal["up", "down", "slow"] = "up"
    delay_s: float = 5.0
    metadata_issuer: str | None = None
    """The ``issuer`` the metadata claims (default: the real URL)."""
    requests: Counter[str] = field(default_factory=Counter)

    __test__ = False

    @property
    def jwks_url(self) -> str:
        return self.url + "/jwks"

    def add_key(self, alg: str = "RS256", kid: str | Literal["auto"] | None = "auto") -> IssuerKey:
        key = new_key(alg, kid)
        self.keys.append(key)
        return key

    def mint(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        key: IssuerKey | None = None,
        headers: Mapping[str, Any] | None = None,
        **more: Any,
    ) -> str:
        """A token signed by ``key`` (default: the newest), with ``iss`` defaulting to ``url``."""
        key = key or self.keys[-1]
        payload = {"iss": self.url, **(claims or {}), **more}
        extra = dict(headers or {})
        if key.kid is not None:
            extra.setdefault("kid", key.kid)
        return jwt.encode(payload, key.private_key, algorithm=key.alg, headers=extra)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        self.requests[path] += 1
        if self.mode == "slow":
            await asyncio.sleep(self.delay_s)
        if self.mode == "down":
            await _respond(send, 503, b'{"error":"down"}', None)
            return
        body: dict[str, Any]
        if path == "/.well-known/openid-configuration":
            body = {"issuer": self.metadata_issuer or self.url, "jwks_uri": self.jwks_url}
        elif path == "/jwks":
            body = {"keys": [k.public_jwk() for k in self.keys]}
        else:
            await _respond(send, 404, b"{}", None)
            return
        await _respond(send, 200, json.dumps(body).encode(), self.cache_control)


async def _respond(send: Send, status: int, body: bytes, cache_control: str | None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if cache_control is not None:
        headers.append((b"cache-control", cache_control.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def running_issuer(**options: Any) -> AsyncIterator[TestIssuer]:
    """A started :class:`TestIssuer` with one RS256 key (options set its fields)."""
    issuer = TestIssuer(**options)
    if not issuer.keys:
        issuer.add_key("RS256")
    async with serve(issuer) as url:
        issuer.url = url
        yield issuer
