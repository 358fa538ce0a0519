"""Chromium signs in through the real IdP: the demo app on ``localhost`` and oidc-provider on
``127.0.0.1`` (two sites, so SameSite mistakes would show), in both sharing modes: click the
provider button (or call ``window.authbridge.signIn``), log in and consent at the IdP's
development pages, land signed in on the page the flow started from."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .idp import Idp, run_idp

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("AUTHBRIDGE_E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000


def require_browser() -> None:
    if CHROMIUM.exists():
        return
    reason = f"Chromium not found at {CHROMIUM}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: the end-to-end suite must run in CI")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")}
    env.update(
        AUTHBRIDGE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp}/e2e.db",
        AUTHBRIDGE_SITE_URL=url,
        AUTHBRIDGE_SESSION_SHARING=sharing,
        AUTHBRIDGE_OAUTH_OIDC_CLIENT_ID=client_id,
        AUTHBRIDGE_OAUTH_OIDC_CLIENT_SECRET="e2e-secret-" + "x" * 32,
        AUTHBRIDGE_OAUTH_OIDC_ISSUER=idp.issuer,
        AUTHBRIDGE_OAUTH_OIDC_NAME="Test IdP",
    )
    log = tmp / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.notes.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the demo exited:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/auth/client.js", timeout=2
                ):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"the demo did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def e2e_idp() -> Iterator[Idp]:
    with run_idp() as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=30_000
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture(scope="module", params=["shared", "per_tab"])
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, e2e_idp: Idp
) -> Iterator[tuple[str, str]]:
    require_browser()
    with demo_server(tmp_path_factory.mktemp("oauth-demo"), e2e_idp, request.param) as url:
        yield url, request.param


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context()
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


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
