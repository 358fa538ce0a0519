"""Fixtures for the interop suite: real uvicorn servers on free ports and the Node side (jose),
installed from ``tests/interop/package-lock.json`` by ``npm ci --prefix tests/interop``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

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


def bound_socket() -> socket.socket:
    """A listening-ready TCP socket on a free 127.0.0.1 port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def uvicorn_on(app: Any, sock: socket.socket) -> AsyncIterator[str]:
    """Serve ``app`` with a real uvicorn on ``sock``, in this event loop."""
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


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
