"""End-to-end fixtures: the notes demo (``examples/notes``) served by uvicorn on 127.0.0.1 (a
subprocess on a free port with a temporary SQLite database), Debian's Chromium driven by
Playwright, one browser per module and a new browser context per test.

Without ``/usr/bin/chromium`` the suite skips with a reason; in CI (``CI=true``) a missing browser
is a failure. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.toolkit.browser import browser_context, launch_chromium, require_chromium
from tests.toolkit.databases import sqlite_url
from tests.toolkit.servers import free_port, run_uvicorn

from .pages import EXPECT_TIMEOUT_MS

DEMO_APP = "examples.notes.app:app"
READY_PATH = "/api/auth/client.js"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@dataclass
class Server:
    """A running app: its base URL and the settings it was started with."""

    url: str
    sharing: str
    log: Path

    def get_json(self, path: str, headers: dict[str, str] | None = None) -> Any:
        """GET a JSON document from the app (outside the browser)."""
        request = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())


@contextlib.contextmanager
def run_server(
    tmp: Path, sharing: str, app: str = DEMO_APP, *, host: str = "127.0.0.1", **env: str
) -> Iterator[Server]:
    """Serve ``app`` (the notes demo) on SQLite in ``tmp`` with
    ``AUTHBRIDGE_SESSION_SHARING=sharing`` until the block ends (``host`` names the site in its
    URL, e.g. ``localhost`` for WebAuthn; it always listens on 127.0.0.1). ``env`` sets
    ``AUTHBRIDGE_<NAME>`` variables."""
    port = free_port()
    url = f"http://{host}:{port}"
    environ = {
        "AUTHBRIDGE_DATABASE_URL": sqlite_url(tmp, "e2e"),
        "AUTHBRIDGE_SITE_URL": url,
        "AUTHBRIDGE_SESSION_SHARING": sharing,
        **{f"AUTHBRIDGE_{k.upper()}": v for k, v in env.items()},
    }
    log = tmp / "server.log"
    with run_uvicorn(app, log, environ, host=host, port=port, ready_path=READY_PATH):
        yield Server(url, sharing, log)


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
    require_chromium()
    stack = contextlib.ExitStack()

    def factory(sharing: str, **env: str) -> Server:
        return stack.enter_context(run_server(tmp_path_factory.mktemp("app"), sharing, **env))

    with stack:
        yield factory


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (cookies, storage) for one test."""
    with browser_context(browser, EXPECT_TIMEOUT_MS * 2) as ctx:
        yield ctx


@pytest.fixture
def email_factory() -> Callable[[str], str]:
    """Unique e-mail addresses: ``email_factory("alice")``."""

    def factory(name: str) -> str:
        return f"{name}-{uuid.uuid4().hex[:8]}@example.com"

    return factory
