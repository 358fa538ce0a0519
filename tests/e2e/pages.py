"""Steps on the demo's pages, shared by the end-to-end tests."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

PASSWORD = "correct horse battery"
EXPECT_TIMEOUT_MS = 5_000
"""Expectations wait at most this long (ms) unless a test says otherwise."""


def submit_auth_form(page: Any, base: str, form: str, email: str, password: str = PASSWORD) -> None:
    """Fill and submit ``form#signin-form`` or ``form#signup-form`` on the sign-in page."""
    if "/signin" not in page.url:
        page.goto(base + "/signin")
    page.fill(f"form#{form} input[name=email]", email)
    page.fill(f"form#{form} input[name=password]", password)
    with page.expect_navigation():
        page.click(f"form#{form} [type=submit]")


def sign_up(page: Any, base: str, email: str) -> None:
    """Create an account with the sign-up form; the page ends signed in."""
    submit_auth_form(page, base, "signup-form", email)
    expect_signed_in(page, email)


def sign_in(page: Any, base: str, email: str) -> None:
    """Sign in with the sign-in form; the page ends signed in."""
    submit_auth_form(page, base, "signin-form", email)
    expect_signed_in(page, email)


def sign_out(page: Any) -> None:
    """Submit the sign-out form of the current page."""
    with page.expect_navigation():
        page.click("form#signout-form [type=submit], form#signout-form button")
    expect_signed_out(page)


def expect_signed_in(page: Any, email: str, timeout: int = EXPECT_TIMEOUT_MS) -> None:
    """The page (as rendered by the server) shows ``email`` signed in, and is on screen (a page
    the client hid while re-requesting it does not count)."""
    expect(page.locator("body")).to_have_attribute("data-auth-state", "signed-in", timeout=timeout)
    expect(page.locator("#user-email")).to_have_text(email, timeout=timeout)
    expect(page.locator("body")).to_be_visible(timeout=timeout)


def expect_signed_out(page: Any, timeout: int = EXPECT_TIMEOUT_MS) -> None:
    """The page shows nobody signed in."""
    expect(page.locator("body")).to_have_attribute("data-auth-state", "signed-out", timeout=timeout)
    expect(page.locator("body")).to_be_visible(timeout=timeout)


def session_id(page: Any) -> str:
    """The session id the page was rendered with ("" when signed out)."""
    element = page.locator("#session-id")
    return str(element.text_content() or "").strip() if element.count() else ""


def client_state(page: Any) -> dict[str, Any]:
    """``window.authbridge.state`` plus the tab id."""
    result: dict[str, Any] = page.evaluate(
        "() => ({...window.authbridge.state, tab: window.authbridge.tab})"
    )
    return result


class Navigations:
    """Counts the document requests of a page's main frame, to tell a navigation that went
    right the first time from one the client had to re-request."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.count = 0
        page.on("request", self._on_request)

    def _on_request(self, request: Any) -> None:
        if request.is_navigation_request() and request.frame == self.page.main_frame:
            self.count += 1

    def take(self, settle_ms: int = 150) -> int:
        """Document requests since the last call (after a short pause for late re-requests)."""
        self.page.wait_for_timeout(settle_ms)
        count, self.count = self.count, 0
        return count
