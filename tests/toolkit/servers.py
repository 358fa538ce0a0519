"""Real servers on 127.0.0.1 at free ports: uvicorn inside the test's event loop (for ASGI apps
the test builds), uvicorn in a child process (for apps started the way users start them), and
addresses where nothing listens. Every wait is bounded; everything started is stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import httpx
import pytest

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
"""The repository root: child servers run from here, so ``examples.*`` apps import."""
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

Lifespan = Literal["auto", "on", "off"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a child process to bind)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def refused_url(scheme: str = "http") -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused."""
    return f"{scheme}://{HOST}:{free_port()}"


def bound_socket() -> socket.socket:
    """A socket bound to a free 127.0.0.1 port, for :func:`serve` (``sock=``) when the app must
    know its own URL before it is served (see :func:`socket_url`)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    return sock


def socket_url(sock: socket.socket) -> str:
    """``http://127.0.0.1:<port>`` of a bound socket."""
    return f"http://{HOST}:{sock.getsockname()[1]}"


@contextlib.asynccontextmanager
async def serve(
    app: Any,
    *,
    sock: socket.socket | None = None,
    lifespan: Lifespan = "off",
    root_path: str = "",
) -> AsyncIterator[str]:
    """Serve the ASGI ``app`` with uvicorn in this event loop until the block ends; yields its
    base URL, ``http://127.0.0.1:<port>``.

    ``sock`` is a socket from :func:`bound_socket` (default: a new one); ``lifespan`` is
    uvicorn's ``--lifespan``; ``root_path`` its ``--root-path`` (the app is served behind a
    path-stripping proxy).

    Raises:
        RuntimeError: uvicorn did not start within 5 s (or the error it failed with).
    """
    import uvicorn

    sock = sock or bound_socket()
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        root_path=root_path,
        ws="websockets-sansio",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            if task.done():
                task.result()
            raise RuntimeError("uvicorn did not start within 5 s")
        yield socket_url(sock)
    finally:
        server.should_exit = True
        # Without a lifespan there is nothing to shut down: don't wait for a request the test
        # left hanging (a deliberately slow endpoint) or an idle keep-alive connection.
        server.force_exit = lifespan == "off"
        try:
            await asyncio.wait_for(task, timeout=STOP_TIMEOUT_S)
        finally:
            sock.close()


class UvicornProcess:
    """``python -m uvicorn <app>`` in a child process, run from the repository root on
    127.0.0.1 at a free port, its output in ``log_path``. It inherits this process's
    environment minus every ``AUTHBRIDGE_*`` variable, plus ``env``.

    ``host`` names the site in :attr:`url` (``localhost`` for WebAuthn); the server always
    listens on 127.0.0.1. :meth:`start` returns once ``ready_path`` answers below 500.
    """

    def __init__(
        self,
        app: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        host: str = HOST,
        port: int | None = None,
        app_dir: Path | None = None,
        ready_path: str = "/",
        args: Sequence[str] = (),
        name: str = "the app server",
    ) -> None:
        self.app = app
        self.log_path = log_path
        self.env = dict(env or {})
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self.origin = f"http://{HOST}:{self.port}"
        """Where the server listens (``url`` may name it ``localhost``)."""
        self.app_dir = app_dir
        self.ready_path = ready_path
        self.args = list(args)
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "uvicorn", self.app, "--host", HOST]
        command += ["--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        if self.app_dir is not None:
            command += ["--app-dir", str(self.app_dir)]
        return command + self.args

    def start(self) -> None:
        """Start the server and wait (at most 30 s) until it answers.

        Raises:
            pytest.fail.Exception: it exited or did not answer in time (the message has its log).
        """
        environ = {k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")}
        environ.update(self.env)
        log: IO[bytes]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited at startup:\n{self.log()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.origin + self.ready_path, timeout=2).status_code < 500:
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name} did not start in {START_TIMEOUT_S} s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Terminate the server (killed if it does not stop within 10 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def run_uvicorn(
    app: str, log_path: Path, env: Mapping[str, str] | None = None, **options: Any
) -> Iterator[UvicornProcess]:
    """A started :class:`UvicornProcess` (same arguments) for the block; always stopped."""
    server = UvicornProcess(app, log_path, env, **options)
    try:
        server.start()
        yield server
    finally:
        server.stop()
