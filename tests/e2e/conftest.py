"""End-to-end fixtures: the notes demo (``examples/notes``) served by uvicorn on 127.0.0.1 (a
subprocess on a free port with a temporary SQLite database), Debian's Chromium driven by
Playwright, one browser per module and a new browser context per test.

Without ``/usr/bin/chromium`` the suite skips with a reason; in CI (``CI=true``) a missing browser
is a failure. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .pages import EXPECT_TIMEOUT_MS

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("AUTHBRIDGE_E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEMO_APP = "examples.notes.app:app"
SERVER_START_TIMEOUT_S = 30.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


def _require_browser() -> None:
    if CHROMIUM.exists():
        return
    reason = f"Chromium not found at {CHROMIUM} (install Debian's chromium package)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: the end-to-end suite must run in CI")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running app: its base URL and the settings it was started with."""

    url: str
    sharing: str
    process: subprocess.Popen[bytes]
    log: Path

    def get_json(self, path: str, headers: dict[str, str] | None = None) -> Any:
        """GET a JSON document from the app (outside the browser)."""
        request = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())


def _bind(port: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port)]


@contextlib.contextmanager
def run_server(
    tmp: Path, sharing: str, app: str = DEMO_APP, *, host: str = "127.0.0.1", **env: str
) -> Iterator[Server]:
    """Serve ``app`` (the notes demo) with ``AUTHBRIDGE_SESSION_SHARING=sharing`` until the
    block ends (``host`` names the site in its URL, e.g. ``localhost`` for WebAuthn; it always
    listens on 127.0.0.1)."""
    port = _free_port()
    url = f"http://{host}:{port}"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")}
    environ = {
        **inherited,
        "AUTHBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/e2e.db",
        "AUTHBRIDGE_SITE_URL": url,
        "AUTHBRIDGE_SESSION_SHARING": sharing,
        **{f"AUTHBRIDGE_{k.upper()}": v for k, v in env.items()},
    }
    log = tmp / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, *_bind(port), "--log-level", "warning"],
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"the app server exited at startup:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/api/auth/client.js", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"the app server did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        yield Server(url, sharing, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def launch_chromium(**options: Any) -> Iterator[Any]:
    """Launch headless Debian Chromium through Playwright (never a downloaded browser)."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            timeout=30_000,
            **options,
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    with launch_chromium() as instance:
        yield instance


@pytest.fixture(scope="module")
def server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Server]]:
    """Start app servers for the module (``factory(sharing, **env)``), all stopped at its end."""
    _require_browser()
    stack = contextlib.ExitStack()

    def factory(sharing: str, **env: str) -> Server:
        return stack.enter_context(run_server(tmp_path_factory.mktemp("app"), sharing, **env))

    with stack:
        yield factory


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (cookies, storage) for one test."""
    ctx = browser.new_context()
    ctx.set_default_timeout(EXPECT_TIMEOUT_MS * 2)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def email_factory() -> Callable[[str], str]:
    """Unique e-mail addresses: ``email_factory("alice")``."""

    def factory(name: str) -> str:
        return f"{name}-{uuid.uuid4().hex[:8]}@example.com"

    return factory
