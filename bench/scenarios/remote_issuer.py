"""A minimal JWKS-serving issuer for the trusted-issuer bench scenario: one RS256 key published
without ``kid`` (as Convex Auth does), served over plain HTTP on 127.0.0.1 by asyncio streams,
and Convex Auth-shaped tokens signed with it."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


@dataclass
class RemoteIssuer:
    """A running issuer: its URL (the ``iss``), its JWKS URL, and a way to mint tokens."""

    url: str
    server: asyncio.AbstractServer
    key: rsa.RSAPrivateKey

    @property
    def jwks_url(self) -> str:
        return self.url + "/.well-known/jwks.json"

    def mint(self, sub: str, audience: str = "convex", lifetime_s: int = 3600) -> str:
        now = int(time.time())
        claims = {"sub": sub, "iss": self.url, "aud": audience, "iat": now, "exp": now + lifetime_s}
        return jwt.encode(claims, self.key, algorithm="RS256")

    async def aclose(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def start_remote_issuer() -> RemoteIssuer:
    """Serve the key set on a free 127.0.0.1 port (every GET answers it)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    body = json.dumps({"keys": [{**jwk, "alg": "RS256", "use": "sig"}]}).encode()
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"cache-control: public, max-age=3600\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(head + body)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return RemoteIssuer(f"http://127.0.0.1:{port}", server, key)
