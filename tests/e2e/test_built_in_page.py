"""The built-in sign-in page in a real Chromium, JavaScript off: an app with no sign-in page of
its own (the Quart example) signs up and in through it, and errors show beside the failed form."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import Server, run_server
from .pages import EXPECT_TIMEOUT_MS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("builtin")
    with run_server(tmp, "shared", app="examples.quart_app.app:app") as running:
        yield running


@pytest.fixture
def no_js(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(java_script_enabled=False)
    ctx.set_default_timeout(EXPECT_TIMEOUT_MS * 2)
    try:
        yield ctx
    finally:
        ctx.close()


def test_the_built_in_page_signs_up_and_shows_errors_beside_the_form(
    server: Server, no_js: Any, email_factory: Callable[[str], str]
) -> None:
    email = email_factory("builtin")
    page = no_js.new_page()
    page.goto(server.url + "/signin?next=/api/me")
    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    page.locator("#signup-email").fill(email)
    page.locator("#signup-password").fill("correct horse battery staple")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(server.url + "/api/me")
    assert email in page.content()

    other = no_js.browser.new_context(java_script_enabled=False)
    try:
        login = other.new_page()
        login.goto(server.url + "/signin")
        login.get_by_label("Email").first.fill(email)
        login.locator("#signin-password").fill("not the password")
        login.get_by_role("button", name="Sign in").click()
        alert = login.get_by_role("alert")
        expect(alert).to_have_text("Wrong email or password.")
        expect(alert).to_have_attribute("id", "signin-error")
        expect(login.locator("#signin-email")).to_have_value(email)
        expect(login.locator("#signup-email")).to_have_value("")
    finally:
        other.close()
