"""Anonymous users and the account page in Chromium: try the app as a guest, then sign up (the
notes stay yours) or sign in (the notes move to your account); the account page's forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import Server
from .pages import (
    EXPECT_TIMEOUT_MS,
    PASSWORD,
    expect_signed_in,
    expect_signed_out,
    sign_up,
    submit_auth_form,
)

SLOW = EXPECT_TIMEOUT_MS * 3
"""per_tab: a typed URL may be re-requested by the client for its tab first; a loaded machine
needs the margin."""


@pytest.fixture(scope="module", params=["shared", "per_tab"])
def server(request: pytest.FixtureRequest, server_factory: Callable[..., Server]) -> Server:
    return server_factory(request.param, anonymous="true")


def try_anonymously(page: Any, base: str) -> None:
    page.goto(base + "/")
    with page.expect_navigation():
        page.click("form#anonymous-form [type=submit]")
    expect(page.locator("#guest-badge")).to_be_visible(timeout=SLOW)
    assert page.url.endswith("/notes")


def add_note(page: Any, text: str) -> None:
    page.fill("form#note-form input[name=text]", text)
    with page.expect_navigation():
        page.click("form#note-form [type=submit]")
    expect(page.locator("li.note", has_text=text)).to_be_visible(timeout=SLOW)


def test_a_guest_signs_up_and_keeps_the_notes(
    server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    page = context.new_page()
    try_anonymously(page, server.url)
    guest_id = page.evaluate("() => window.authbridge.state.userId")
    add_note(page, "guest thought")
    email = email_factory("guest")
    page.goto(server.url + "/signin?next=/notes")
    submit_auth_form(page, server.url, "signup-form", email)
    expect_signed_in(page, email, timeout=SLOW)
    assert page.evaluate("() => window.authbridge.state.userId") == guest_id
    page.goto(server.url + "/notes")
    expect(page.locator("li.note")).to_have_text(["guest thought"], timeout=SLOW)
    expect(page.locator("#guest-badge")).to_have_count(0)


def test_a_guest_signs_in_and_the_notes_move_to_the_account(
    server: Server, browser: Any, context: Any, email_factory: Callable[[str], str]
) -> None:
    email = email_factory("owner")
    owner = browser.new_context()
    try:
        page = owner.new_page()
        sign_up(page, server.url, email)
        page.goto(server.url + "/notes")
        add_note(page, "from my laptop")
    finally:
        owner.close()
    page = context.new_page()
    try_anonymously(page, server.url)
    add_note(page, "from the guest")
    page.goto(server.url + "/signin?next=/notes")
    submit_auth_form(page, server.url, "signin-form", email, PASSWORD)
    expect_signed_in(page, email, timeout=SLOW)
    page.goto(server.url + "/notes")
    expect(page.locator("li.note")).to_have_text(["from my laptop", "from the guest"], timeout=SLOW)


def test_the_account_page_refuses_the_last_method_and_deletes_the_account(
    server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    page = context.new_page()
    email = email_factory("leaver")
    sign_up(page, server.url, email)
    page.goto(server.url + "/account")
    # per_tab: a typed URL may be re-requested by the client for this tab first.
    expect(page.locator("li.method")).to_have_text(["password"], timeout=EXPECT_TIMEOUT_MS * 3)
    with page.expect_navigation():
        page.click("form.unlink-form[data-provider=password] [type=submit]")
    expect(page.locator("#auth-error")).to_have_attribute("data-code", "LastSignInMethod")
    page.fill("form#delete-form input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("form#delete-form [type=submit]")
    expect_signed_out(page)
    submit_auth_form(page, server.url, "signin-form", email, PASSWORD)
    expect(page.locator("#auth-error")).to_have_attribute("data-code", "InvalidCredentials")
