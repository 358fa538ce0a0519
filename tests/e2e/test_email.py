"""Email codes, magic links, password reset and required verification in Chromium, against the
notes demo sending through a real SMTP server (aiosmtpd in this process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.otp.smtp import SmtpServer, code_in, link_in, running_smtp_server

from .conftest import Server
from .pages import EXPECT_TIMEOUT_MS, expect_signed_in, expect_signed_out, sign_up

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
def server(server_factory: Callable[..., Server], smtp: SmtpServer) -> Server:
    return server_factory("shared", smtp_url=smtp.url, email_from="notes@example.com")


@pytest.fixture(params=[True, False], ids=["js", "no-js"])
def js_context(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(java_script_enabled=request.param)
    ctx.set_default_timeout(EXPECT_TIMEOUT_MS * 2)
    try:
        yield ctx
    finally:
        ctx.close()


def request_code(page: Any, base: str, email: str) -> None:
    page.goto(base + "/signin")
    page.fill("form#email-signin-form input[name=email]", email)
    with page.expect_navigation():
        page.click("form#email-signin-form button")
    expect(page.locator("form#code-form")).to_be_visible()


def test_sign_in_by_code_with_and_without_javascript(
    server: Server, smtp: SmtpServer, js_context: Any, email_factory: Callable[[str], str]
) -> None:
    email = email_factory("code")
    page = js_context.new_page()
    request_code(page, server.url, email)
    expect_signed_out(page)
    expect(page.locator("form#code-form input[name=email]")).to_have_value(email)
    page.fill("form#code-form input[name=code]", code_in(smtp.mailbox.wait(email)))
    with page.expect_navigation():
        page.click("form#code-form button")
    expect_signed_in(page, email)


def test_a_magic_link_opened_in_a_second_browser_signs_that_browser_in(
    server: Server, smtp: SmtpServer, browser: Any, email_factory: Callable[[str], str]
) -> None:
    email = email_factory("link")
    asking, second, third = browser.new_context(), browser.new_context(), browser.new_context()
    try:
        page = asking.new_page()
        request_code(page, server.url, email)
        link = link_in(smtp.mailbox.wait(email))
        other = second.new_page()
        other.goto(link)  # the confirmation page submits itself
        expect_signed_in(other, email)
        page.reload()
        expect_signed_out(page)
        again = third.new_page()
        again.goto(link)
        expect(again.locator("#confirm-invalid")).to_be_visible()
    finally:
        for ctx in (asking, second, third):
            ctx.close()


def test_a_scanner_get_then_the_users_click_without_javascript(
    server: Server, smtp: SmtpServer, browser: Any, email_factory: Callable[[str], str]
) -> None:
    email = email_factory("scan")
    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        request_code(page, server.url, email)
        link = link_in(smtp.mailbox.wait(email))
        scanner = browser.new_context(java_script_enabled=False)
        try:
            scanned = scanner.new_page()
            scanned.goto(link)
            expect(scanned.locator("form#confirm-form")).to_be_visible()
            expect_signed_out_anywhere(scanned, server)
        finally:
            scanner.close()
        page.goto(link)
        with page.expect_navigation():
            page.click("form#confirm-form button")
        expect_signed_in(page, email)
    finally:
        ctx.close()


def expect_signed_out_anywhere(page: Any, server: Server) -> None:
    page.goto(server.url + "/")
    expect_signed_out(page)


def test_reset_a_forgotten_password_and_the_other_browser_is_signed_out(
    server: Server, smtp: SmtpServer, browser: Any, email_factory: Callable[[str], str]
) -> None:
    email = email_factory("reset")
    first, second = browser.new_context(), browser.new_context()
    try:
        laptop = first.new_page()
        laptop.goto(server.url + "/signin")
        sign_up(laptop, server.url, email)
        phone = second.new_page()
        phone.goto(server.url + "/signin")
        phone.click("a#forgot-password")
        expect(phone).to_have_url(server.url + "/reset")
        phone.fill("form#reset-request-form input[name=email]", email)
        with phone.expect_navigation():
            phone.click("form#reset-request-form button")
        expect(phone.locator("form#reset-form input[name=email]")).to_have_value(email)
        phone.fill("form#reset-form input[name=code]", code_in(smtp.mailbox.wait(email)))
        phone.fill("form#reset-form input[name=newPassword]", NEW_PASSWORD)
        with phone.expect_navigation():
            phone.click("form#reset-form button")
        expect_signed_in(phone, email)
        laptop.goto(server.url + "/notes")
        expect(laptop).to_have_url(server.url + "/signin?next=%2Fnotes")
        expect_signed_out(laptop)
    finally:
        first.close()
        second.close()


def test_required_verification_from_sign_up_to_signed_in(
    server_factory: Callable[..., Server],
    smtp: SmtpServer,
    js_context: Any,
    email_factory: Callable[[str], str],
) -> None:
    strict = server_factory(
        "shared",
        smtp_url=smtp.url,
        email_from="notes@example.com",
        email_verification="required",
    )
    email = email_factory("verify")
    page = js_context.new_page()
    page.goto(strict.url + "/signin")
    page.fill("form#signup-form input[name=email]", email)
    page.fill("form#signup-form input[name=password]", "correct horse battery staple")
    with page.expect_navigation():
        page.click("form#signup-form button")
    expect_signed_out(page)
    expect(page.locator("form#code-form input[name=flow]")).to_have_value("email-verification")
    page.fill("form#code-form input[name=code]", code_in(smtp.mailbox.wait(email)))
    with page.expect_navigation():
        page.click("form#code-form button")
    expect_signed_in(page, email)


def test_the_browser_client_signs_in_by_code(
    server: Server, smtp: SmtpServer, context: Any, email_factory: Callable[[str], str]
) -> None:
    email = email_factory("client")
    page = context.new_page()
    page.goto(server.url + "/")
    started = page.evaluate("e => window.authbridge.signIn('email', {email: e})", email)
    assert started == {"started": True}
    code = code_in(smtp.mailbox.wait(email))
    done = page.evaluate(
        "([e, c]) => window.authbridge.signIn('email', {email: e, code: c})", [email, code]
    )
    assert done["signedIn"] is True
    page.reload()
    expect_signed_in(page, email)
