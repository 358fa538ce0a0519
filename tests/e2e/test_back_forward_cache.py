"""Pages restored from the back/forward cache (no request is made) catch up with sign-outs made
while they were away. Playwright disables the cache by default; this module turns it back on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.toolkit.browser import launch_chromium

from .conftest import Server
from .pages import expect_signed_out, sign_up

RESTORED_SCRIPT = """
addEventListener("pageshow", (event) => {
  if (event.persisted) sessionStorage.setItem("restored", location.pathname);
});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium(ignore_default_args=["--disable-back-forward-cache"]) as instance:
        yield instance


@pytest.fixture(scope="module", params=["shared", "per_tab"])
def server(request: pytest.FixtureRequest, server_factory: Callable[..., Server]) -> Server:
    return server_factory(request.param)


def test_a_restored_page_reloads_when_its_user_signed_out_meanwhile(
    server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    page = context.new_page()
    page.add_init_script(RESTORED_SCRIPT)
    sign_up(page, server.url, email_factory("bfcache"))
    page.goto(server.url + "/notes")
    with page.expect_navigation():
        page.click("nav a[href='/']")
    page.evaluate("() => authbridge.signOut()")

    page.go_back()
    expect(page).to_have_url(server.url + "/signin?next=%2Fnotes")
    expect_signed_out(page)
    # The restored copy of /notes was shown from the cache, then re-requested by the client.
    assert page.evaluate("() => sessionStorage.getItem('restored')") == "/notes"
