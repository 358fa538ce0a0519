"""The notes demo's browser-side finish: an error lands beside the form that was submitted with
the typed email kept, and a tab whose session was ended elsewhere says so even when a protected
page redirected it to the sign-in page — but not after signing out by itself."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import Server
from .pages import PASSWORD, sign_out, sign_up


@pytest.fixture(scope="module")
def server(server_factory: Any) -> Server:
    result: Server = server_factory("shared")
    return result


def submit(page: Any, form: str, email: str, password: str) -> None:
    page.fill(f"form#{form} input[name=email]", email)
    page.fill(f"form#{form} input[name=password]", password)
    with page.expect_navigation():
        page.click(f"form#{form} [type=submit]")


@pytest.mark.parametrize(
    ("form", "email", "password", "code"),
    [
        ("signin-form", "nobody@example.com", "wrong password", "InvalidCredentials"),
        # The server alone would put InvalidEmail beside the sign-in form; the script knows better.
        ("signup-form", "not-an-email", PASSWORD, "InvalidEmail"),
    ],
)
def test_an_error_lands_beside_the_submitted_form_with_the_email_kept(
    server: Server, context: Any, form: str, email: str, password: str, code: str
) -> None:
    page = context.new_page()
    page.goto(server.url + "/signin")
    submit(page, form, email, password)
    error = page.locator(f"section[data-auth-form={form}] #auth-error")
    expect(error).to_have_attribute("data-code", code)
    expect(error).to_be_visible()
    expect(page.locator(f"form#{form} input[name=email]")).to_have_value(email)
    expect(page.locator(f"form#{form} input[aria-invalid=true]")).to_be_focused()


def test_a_tab_signed_out_elsewhere_sees_the_banner_after_a_redirect(
    server: Server, browser: Any, context: Any, email_factory: Any
) -> None:
    email = email_factory("ended")
    page = context.new_page()
    sign_up(page, server.url, email)
    other = browser.new_context()
    try:
        elsewhere = other.new_page()
        elsewhere.goto(server.url + "/signin")
        submit(elsewhere, "signin-form", email, PASSWORD)
        elsewhere.goto(server.url + "/sessions")
        with elsewhere.expect_navigation():
            elsewhere.click("form#revoke-others [type=submit]")
    finally:
        other.close()
    page.goto(server.url + "/notes")  # protected: 303 to /signin?next=%2Fnotes
    expect(page).to_have_url(server.url + "/signin?next=%2Fnotes")
    expect(page.locator("#session-ended")).to_be_visible()


def test_signing_out_by_yourself_shows_no_banner(
    server: Server, context: Any, email_factory: Any
) -> None:
    page = context.new_page()
    sign_up(page, server.url, email_factory("self"))
    sign_out(page)
    expect(page.locator("#session-ended")).to_be_hidden()
    page.goto(server.url + "/notes")
    expect(page.locator("#session-ended")).to_be_hidden()
