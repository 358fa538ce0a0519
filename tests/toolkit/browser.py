"""Debian's Chromium, driven by Playwright (never a downloaded browser). Without it a test skips
with a reason; in CI (``CI=true``) a missing browser is a failure."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("AUTHBRIDGE_E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Skip the test when Chromium is not installed; fail instead in CI."""
    if CHROMIUM.exists():
        return
    reason = f"Chromium not found at {CHROMIUM} (install Debian's chromium package)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: the end-to-end suites must run in CI")
    pytest.skip(reason)


@contextlib.contextmanager
def launch_chromium(**options: Any) -> Iterator[Any]:
    """A headless Chromium for the block (``options`` go to Playwright's ``launch``, e.g.
    ``ignore_default_args``); always closed.

    Raises:
        pytest.skip.Exception: Chromium is not installed (``pytest.fail`` in CI).
    """
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            timeout=30_000,
            **options,
        )
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def browser_context(browser: Any, timeout_ms: int, **options: Any) -> Iterator[Any]:
    """A fresh profile (cookies, storage) of ``browser`` whose waits give up after
    ``timeout_ms``; ``options`` go to ``new_context`` (e.g. ``java_script_enabled=False``)."""
    context = browser.new_context(**options)
    context.set_default_timeout(timeout_ms)
    try:
        yield context
    finally:
        context.close()
