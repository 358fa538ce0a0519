"""Fixtures for the SSR suite: in-process clients on ``http://127.0.0.1`` and the state island
parser (clients, sign-up, servers and the statement recorder come from ``tests/toolkit/``).

The shared ``db_url`` fixture is narrowed to SQLite: rendering does not depend on the backend.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.toolkit.databases import sqlite_url

BASE = "http://127.0.0.1"
ISLAND_RE = re.compile(
    r'<script id="authbridge-state" type="application/json"(?: nonce="[^"]*")?>(.*?)</script>', re.S
)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only (see the module docstring)."""
    return sqlite_url(tmp_path)


@pytest.fixture
def client_base_url() -> str:
    """Plain http on an IP: development cookie names (no ``__Host-`` prefix)."""
    return BASE


def island(html: str) -> dict[str, Any]:
    """The JSON state island of a rendered page."""
    match = ISLAND_RE.search(html)
    assert match is not None, html
    data: dict[str, Any] = json.loads(match.group(1))
    return data
