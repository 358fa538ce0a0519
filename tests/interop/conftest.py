"""Fixtures for the interop suite: real uvicorn servers on free ports and the Node side (jose),
installed from ``tests/interop/package-lock.json`` by ``npm ci --prefix tests/interop``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).parent


def node_ready() -> str:
    """The ``node`` executable, with jose installed next to this file.

    Fails (never skips) when either is missing: the suite's point is to run the real library.
    """
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node 20 is part of the test machine)")
    if not (HERE / "node_modules" / "jose" / "package.json").exists():
        pytest.fail("jose is not installed: run `npm ci --prefix tests/interop`")
    return node


async def run_node(script: str, *args: str, timeout: float = 30) -> dict[str, Any]:
    """Run a Node script of this folder; it prints one JSON object on stdout."""
    process = await asyncio.create_subprocess_exec(
        node_ready(),
        str(HERE / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


class NodeIssuer:
    """A running ``issuer.mjs``: mint tokens, rotate keys, take it down, count key fetches."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, issuer: str) -> None:
        self.process = process
        self.url = url
        self.issuer = issuer
        self.http = httpx.AsyncClient(base_url=url, timeout=10)

    @property
    def jwks_url(self) -> str:
        return self.url + "/.well-known/jwks.json"

    async def mint(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        response = await self.http.post("/mint", json={"claims": claims, "header": header})
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    async def rotate(self) -> None:
        (await self.http.post("/rotate")).raise_for_status()

    async def set_mode(self, mode: str, cache_control: str | None = "unchanged") -> None:
        body: dict[str, Any] = {"mode": mode}
        if cache_control != "unchanged":
            body["cacheControl"] = cache_control
        (await self.http.post("/mode", json=body)).raise_for_status()

    async def stats(self) -> dict[str, int]:
        data: dict[str, int] = (await self.http.get("/stats")).json()
        return data


@contextlib.asynccontextmanager
async def node_issuer(kind: str) -> AsyncIterator[NodeIssuer]:
    """Start ``issuer.mjs`` (``convex`` or ``auth0``) and stop it afterwards."""
    process = await asyncio.create_subprocess_exec(
        node_ready(),
        str(HERE / "issuer.mjs"),
        kind,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 15)
        assert line, "issuer.mjs exited before listening"
        started = json.loads(line)
        issuer = NodeIssuer(process, started["url"], started["issuer"])
        try:
            yield issuer
        finally:
            await issuer.http.aclose()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()


@pytest.fixture
async def convex_issuer() -> AsyncIterator[NodeIssuer]:
    """A Convex Auth-shaped issuer (RS256, keys without kid)."""
    async with node_issuer("convex") as issuer:
        yield issuer


@pytest.fixture
async def auth0_issuer() -> AsyncIterator[NodeIssuer]:
    """An Auth0-shaped issuer (RS256 with kid, ``iss`` ending in ``/``, discovery)."""
    async with node_issuer("auth0") as issuer:
        yield issuer
