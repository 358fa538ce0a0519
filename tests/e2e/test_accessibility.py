"""The demo is accessible and usable on a small screen: axe-core (pinned in tests/a11y, injected
into each page) finds no WCAG 2.1 A/AA violation on any page, signed out or in, light or dark, and
no page scrolls sideways at 360 px, however long a note is."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.toolkit.servers import ROOT

from .conftest import Server
from .pages import sign_up

AXE = ROOT / "tests" / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
SIGNED_OUT_PAGES = ["/", "/signin", "/signin?next=%2Fnotes&error=InvalidCredentials"]
SIGNED_IN_PAGES = ["/", "/notes", "/sessions", "/signin"]
LONG_NOTE = "unbroken" * 60 + " and then a sentence that goes on for a while, " * 6


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        reason = f"{AXE.relative_to(ROOT)} is missing: run `npm ci --prefix tests/a11y`"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def server(server_factory: Any) -> Server:
    result: Server = server_factory("shared")
    return result


@pytest.fixture(params=["light", "dark"])
def themed_context(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(color_scheme=request.param)
    try:
        yield ctx
    finally:
        ctx.close()


def violations(page: Any, axe_source: str) -> list[str]:
    """axe-core's WCAG A/AA violations on the current page, one readable line each."""
    page.add_script_tag(content=axe_source)
    result: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
            const report = await axe.run(document, { runOnly: { type: "tag", values: tags } });
            return report.violations.map((v) => ({
                id: v.id, help: v.help, targets: v.nodes.map((n) => n.target.join(" ")),
            }));
        }""",
        WCAG_TAGS,
    )
    return [f"{v['id']}: {v['help']} at {', '.join(v['targets'])}" for v in result]


def test_signed_out_pages_have_no_axe_violations(
    server: Server, themed_context: Any, axe_source: str
) -> None:
    page = themed_context.new_page()
    for path in SIGNED_OUT_PAGES:
        page.goto(server.url + path)
        assert violations(page, axe_source) == [], path


def test_signed_in_pages_have_no_axe_violations(
    server: Server, themed_context: Any, axe_source: str, email_factory: Any
) -> None:
    page = themed_context.new_page()
    sign_up(page, server.url, email_factory("a11y"))
    page.goto(server.url + "/notes")
    page.fill("form#note-form input[name=text]", "A note to give the list an item")
    with page.expect_navigation():
        page.click("form#note-form [type=submit]")
    for path in SIGNED_IN_PAGES:
        page.goto(server.url + path)
        assert violations(page, axe_source) == [], path


def test_no_page_scrolls_sideways_at_360_px(
    server: Server, browser: Any, email_factory: Any
) -> None:
    ctx = browser.new_context(viewport={"width": 360, "height": 740})
    try:
        page = ctx.new_page()
        for path in SIGNED_OUT_PAGES:
            page.goto(server.url + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= 360, path
        sign_up(page, server.url, email_factory("narrow"))
        page.goto(server.url + "/notes")
        page.fill("form#note-form input[name=text]", LONG_NOTE)
        with page.expect_navigation():
            page.click("form#note-form [type=submit]")
        for path in SIGNED_IN_PAGES:
            page.goto(server.url + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= 360, path
    finally:
        ctx.close()


def test_axe_is_pinned_with_a_lockfile() -> None:
    folder = Path(ROOT / "tests" / "a11y")
    assert '"axe-core": "' in (folder / "package.json").read_text()
    assert (folder / "package-lock.json").exists()
