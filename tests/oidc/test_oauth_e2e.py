"""Chromium signs in through the real IdP: the demo app on ``localhost`` and oidc-provider on
``127.0.0.1`` (two sites, so SameSite mistakes would show), in both sharing modes: click the
provider button (or call ``window.authbridge.signIn``), log in and consent at the IdP's
development pages, land signed in on the page the flow started from."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.toolkit.browser import browser_context, launch_chromium, require_chromium
from tests.toolkit.databases import sqlite_url
from tests.toolkit.servers import free_port, run_uvicorn

from .idp import Idp, run_idp

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 10_000


@contextlib.contextmanager
def demo_server(tmp: Path, idp: Idp, sharing: str) -> Iterator[str]:
    """The notes demo at ``http://localhost:<port>`` with the IdP as provider ``oidc``."""
    port = free_port()
    url = f"http://localhost:{port}"
    client_id = f"e2e-{port}"
    idp.register(
        [
            {
                "client_id": client_id,
                "client_secret": "e2e-secret-" + "x" * 32,
                "redirect_uris": [f"{url}/api/auth/callback/oidc"],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
            }
        ]
    )
    env = {
        "AUTHBRIDGE_DATABASE_URL": sqlite_url(tmp, "e2e"),
        "AUTHBRIDGE_SITE_URL": url,
        "AUTHBRIDGE_SESSION_SHARING": sharing,
        "AUTHBRIDGE_OAUTH_OIDC_CLIENT_ID": client_id,
        "AUTHBRIDGE_OAUTH_OIDC_CLIENT_SECRET": "e2e-secret-" + "x" * 32,
        "AUTHBRIDGE_OAUTH_OIDC_ISSUER": idp.issuer,
        "AUTHBRIDGE_OAUTH_OIDC_NAME": "Test IdP",
    }
    with run_uvicorn(
        "examples.notes.app:app",
        tmp / "server.log",
        env,
        host="localhost",
        port=port,
        ready_path="/api/auth/client.js",
        name="the demo",
    ):
        yield url


@pytest.fixture(scope="module")
def e2e_idp() -> Iterator[Idp]:
    with run_idp() as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as instance:
        yield instance


@pytest.fixture(scope="module", params=["shared", "per_tab"])
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, e2e_idp: Idp
) -> Iterator[tuple[str, str]]:
    require_chromium()
    with demo_server(tmp_path_factory.mktemp("oauth-demo"), e2e_idp, request.param) as url:
        yield url, request.param


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    with browser_context(browser, TIMEOUT_MS) as ctx:
        yield ctx


def log_in_at_the_idp(page: Any, idp: Idp, login: str) -> None:
    """The IdP's development pages: any login name, then consent."""
    page.wait_for_url(idp.issuer + "/interaction/**")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "anything")
    page.click("button[type=submit]")
    page.wait_for_url(idp.issuer + "/interaction/**")
    page.click("button[type=submit]")  # "Continue": consent


def expect_signed_in_as(page: Any, email: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator("body")).to_have_attribute("data-auth-state", "signed-in")
    expect(page.locator("#user-email")).to_have_text(email)


def unique(name: str) -> str:
    return f"{name}-{os.urandom(3).hex()}"


def test_chromium_signs_in_with_the_provider_button_and_lands_where_it_started(
    demo: tuple[str, str], e2e_idp: Idp, context: Any
) -> None:
    url, sharing = demo
    page = context.new_page()
    page.goto(url + "/notes")
    page.wait_for_url(url + "/signin?next=%2Fnotes")
    button = page.locator("form.oauth-signin[data-provider=oidc] button[type=submit]")
    assert button.text_content() == "Test IdP"
    button.click()
    login = unique("chromium")
    log_in_at_the_idp(page, e2e_idp, login)
    page.wait_for_url(url + "/notes")
    expect_signed_in_as(page, f"{login}@example.test")
    # A reload keeps the session (the cookies landed in this tab's slot in per_tab mode).
    page.reload()
    expect_signed_in_as(page, f"{login}@example.test")
    other = context.new_page()
    other.goto(url + "/")
    if sharing == "shared":
        expect_signed_in_as(other, f"{login}@example.test")
    else:
        from playwright.sync_api import expect

        expect(other.locator("body")).to_have_attribute("data-auth-state", "signed-out")


def test_chromium_signs_in_through_window_authbridge_sign_in(
    demo: tuple[str, str], e2e_idp: Idp, context: Any
) -> None:
    url, _ = demo
    page = context.new_page()
    page.goto(url + "/")
    page.evaluate("() => window.authbridge.signIn('oidc', {redirectTo: '/sessions'})")
    login = unique("script")
    log_in_at_the_idp(page, e2e_idp, login)
    page.wait_for_url(url + "/sessions")
    expect_signed_in_as(page, f"{login}@example.test")
    state = page.evaluate("() => window.authbridge.state")
    assert state["isAuthenticated"] is True


def test_the_session_lands_in_the_tab_that_started_the_flow(
    demo: tuple[str, str], e2e_idp: Idp, context: Any
) -> None:
    """per_tab: only the starting tab is signed in; shared: every tab is."""
    url, sharing = demo
    from playwright.sync_api import expect

    waiting = context.new_page()
    waiting.goto(url + "/")
    starter = context.new_page()
    starter.goto(url + "/signin")
    starter.click("form.oauth-signin[data-provider=oidc] button[type=submit]")
    login = unique("tab")
    log_in_at_the_idp(starter, e2e_idp, login)
    starter.wait_for_url(url + "/")
    expect_signed_in_as(starter, f"{login}@example.test")
    waiting.reload()
    if sharing == "per_tab":
        expect(waiting.locator("body")).to_have_attribute("data-auth-state", "signed-out")
    else:
        expect_signed_in_as(waiting, f"{login}@example.test")


def test_consent_denied_in_chromium_lands_on_the_sign_in_page_with_the_code(
    demo: tuple[str, str], e2e_idp: Idp, context: Any
) -> None:
    url, _ = demo
    page = context.new_page()
    page.goto(url + "/signin")
    page.click("form.oauth-signin[data-provider=oidc] button[type=submit]")
    page.wait_for_url(e2e_idp.issuer + "/interaction/**")
    page.click("a[href$='/abort']")
    page.wait_for_url(url + "/signin?error=OAuthDenied")
    from playwright.sync_api import expect

    expect(page.locator("#auth-error")).to_have_attribute("data-code", "OAuthDenied")
