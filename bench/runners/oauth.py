"""OAuth runner (report table [4b]): the callback's own work, without the IdP's round trips.

A stand-in OpenID provider runs in the benchmark process under uvicorn on 127.0.0.1: discovery,
a JWKS (``Cache-Control: max-age=300``), a token endpoint that answers an RS256 ID token for the
nonce carried in the code, and userinfo. Each sign-in starts in process (``POST signin``), then
the callback is called in process with ``code``, ``state`` and ``iss`` (no browser, no login page).
The provider's calls to the IdP are timed where they happen, so

    own work = callback wall time - time spent waiting for the IdP (token + userinfo + keys)

is what authbridge itself spends: flow lookup and consumption, state/cookie checks, ID-token
verification, account lookup or creation, session creation, cookies. Reported for a new user's
first sign-in and for a returning user, on SQLite. The JWKS fetch count over all sign-ins shows
the keys are fetched once per cache period (and once more after the clock passes max-age).
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from authbridge import Auth, AuthConfig, AuthMiddleware, PasswordConfig
from authbridge.config import OAuthProviderConfig
from authbridge.providers import PasswordProvider
from authbridge.providers.oauth import OAuthProvider
from bench.scenarios import databases

CLIENT_ID = "bench-client"
SECRET = "bench-secret-" + "0" * 32


class _Clock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


class StandInIdp:
    """Just enough of an OpenID provider for the callback to do all of its checks."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwk = {**jwk, "kid": "bench", "alg": "RS256", "use": "sig"}
        self.url = ""
        self.jwks_requests = 0
        self.counter = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        document: Any
        if path == "/.well-known/openid-configuration":
            document = {
                "issuer": self.url,
                "authorization_endpoint": self.url + "/auth",
                "token_endpoint": self.url + "/token",
                "userinfo_endpoint": self.url + "/me",
                "jwks_uri": self.url + "/jwks",
                "authorization_response_iss_parameter_supported": True,
            }
        elif path == "/jwks":
            self.jwks_requests += 1
            document = {"keys": [self.jwk]}
        elif path == "/token":
            form = dict(parse_qsl(body.decode()))
            nonce, login = base64.urlsafe_b64decode(form["code"]).decode().split("|")
            now = int(time.time())
            id_token = jwt.encode(
                {
                    "iss": self.url,
                    "aud": CLIENT_ID,
                    "sub": login,
                    "nonce": nonce,
                    "iat": now,
                    "exp": now + 600,
                },
                self.key,
                algorithm="RS256",
                headers={"kid": "bench"},
            )
            document = {
                "access_token": "at-" + login,
                "token_type": "Bearer",
                "expires_in": 3600,
                "id_token": id_token,
            }
        elif path == "/me":
            auth = dict(scope["headers"]).get(b"authorization", b"").decode()
            login = auth.removeprefix("Bearer at-")
            document = {
                "sub": login,
                "email": f"{login}@bench.example",
                "email_verified": True,
                "name": login,
            }
        else:
            document = {}
        payload = json.dumps(document).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"cache-control", b"public, max-age=300"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@contextlib.asynccontextmanager
async def _serve(app: Any) -> AsyncIterator[str]:
    import asyncio

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    )
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


class _TimedProvider(OAuthProvider):
    """Records the time spent waiting for the IdP (every HTTP call the provider makes)."""

    waited = 0.0

    async def _http(self, method: str, url: str, what: str, **kwargs: Any) -> tuple[int, Any]:
        started = time.perf_counter()
        try:
            return await super()._http(method, url, what, **kwargs)
        finally:
            type(self).waited += time.perf_counter() - started


@dataclass(frozen=True)
class CallbackTiming:
    label: str
    count: int
    total_ms: float
    idp_ms: float
    own_ms: float
    own_min_ms: float
    own_max_ms: float


@dataclass(frozen=True)
class OAuthReport:
    timings: list[CallbackTiming]
    sign_ins: int
    jwks_fetches: int
    jwks_fetches_after_max_age: int


async def run(sign_ins: int = 60) -> OAuthReport:
    """Sign ``sign_ins`` new users in, then the same users again; time each callback."""
    idp = StandInIdp()
    database = await databases.create_database("sqlite")
    clock = _Clock()
    try:
        async with _serve(idp) as url:
            idp.url = url
            config = OAuthProviderConfig(
                id="oidc", client_id=CLIENT_ID, client_secret=SECRET, issuer=url
            )
            provider = _TimedProvider(config)
            auth = Auth(
                AuthConfig(
                    database_url=database.url,
                    site_url="https://localhost",
                    jwt_private_keys=(databases.private_pem(),),
                    password=PasswordConfig(argon2_memory_kib=1024, argon2_time_cost=1),
                    oauth=(config,),
                ),
                providers=[PasswordProvider(), provider],
                create_tables=True,
                clock=clock,
            )
            await auth.open()
            app = AuthMiddleware(_empty_app, auth)
            timings = []
            for label in ("new user", "returning user"):
                totals, waits = [], []
                for i in range(sign_ins):
                    total, waited = await _one(app, f"user{i}", url)
                    totals.append(total)
                    waits.append(waited)
                own = [t - w for t, w in zip(totals, waits, strict=True)]
                timings.append(
                    CallbackTiming(
                        label,
                        sign_ins,
                        statistics.median(totals) * 1000,
                        statistics.median(waits) * 1000,
                        statistics.median(own) * 1000,
                        min(own) * 1000,
                        max(own) * 1000,
                    )
                )
            fetched = idp.jwks_requests
            clock.offset = timedelta(seconds=301)  # past the JWKS max-age
            await _one(app, "late", url)
            after = idp.jwks_requests
            await auth.close()
    finally:
        await database.drop()
    return OAuthReport(timings, 2 * sign_ins, fetched, after)


async def _empty_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _one(app: Any, login: str, issuer: str) -> tuple[float, float]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://localhost") as client:
        start = await client.post(
            "/api/auth/signin", json={"provider": "oidc", "params": {"redirectTo": "/"}}
        )
        query = dict(parse_qsl(urlsplit(start.json()["redirect"]).query))
        code = base64.urlsafe_b64encode(f"{query['nonce']}|{login}".encode()).decode()
        _TimedProvider.waited = 0.0
        started = time.perf_counter()
        answer = await client.get(
            "/api/auth/callback/oidc",
            params={"code": code, "state": query["state"], "iss": issuer},
        )
        total = time.perf_counter() - started
        if answer.headers.get("location") != "/":
            raise RuntimeError(f"bench sign-in failed: {answer.headers.get('location')}")
        return total, _TimedProvider.waited
