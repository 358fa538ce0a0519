"""Plain HTML forms work with JavaScript disabled, in both sharing modes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import Server
from .pages import (
    EXPECT_TIMEOUT_MS,
    expect_signed_in,
    expect_signed_out,
    sign_in,
    sign_out,
    sign_up,
    submit_auth_form,
)


@pytest.fixture(scope="module", params=["shared", "per_tab"])
def server(request: pytest.FixtureRequest, server_factory: Callable[..., Server]) -> Server:
    return server_factory(request.param)


@pytest.fixture
def no_js(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(java_script_enabled=False)
    ctx.set_default_timeout(EXPECT_TIMEOUT_MS * 2)
    try:
        yield ctx
    finally:
        ctx.close()


def test_sign_up_notes_and_sign_out_work_without_javascript(
    server: Server, no_js: Any, email_factory: Callable[[str], str]
) -> None:
    page = no_js.new_page()
    email = email_factory("nojs")
    page.goto(server.url + "/notes")
    expect(page).to_have_url(server.url + "/signin?next=%2Fnotes")
    expect_signed_out(page)

    sign_up(page, server.url, email)
    expect(page).to_have_url(server.url + "/notes")

    page.fill("form#note-form input[name=text]", "written without js")
    with page.expect_navigation():
        page.click("form#note-form button")
    expect(page.locator("ul#notes > li.note")).to_have_text(["written without js"])
    expect_signed_in(page, email)

    sign_out(page)
    page.goto(server.url + "/notes")
    expect(page).to_have_url(server.url + "/signin?next=%2Fnotes")


def test_failed_sign_in_shows_the_error_code_without_javascript(
    server: Server, no_js: Any, email_factory: Callable[[str], str]
) -> None:
    page = no_js.new_page()
    email = email_factory("wrong")
    sign_up(page, server.url, email)
    sign_out(page)

    submit_auth_form(page, server.url, "signin-form", email, "not the password")
    expect(page.locator("#auth-error")).to_have_attribute("data-code", "InvalidCredentials")
    expect_signed_out(page)

    sign_in(page, server.url, email)


def test_without_javascript_every_tab_shares_one_session(
    server: Server, no_js: Any, email_factory: Callable[[str], str]
) -> None:
    # per_tab degrades to one browser-wide slot when the script cannot name the tab.
    first, second = no_js.new_page(), no_js.new_page()
    email = email_factory("slot")
    sign_up(first, server.url, email)
    second.goto(server.url + "/")
    expect_signed_in(second, email)
    sign_out(second)
    first.reload()
    expect_signed_out(first)
