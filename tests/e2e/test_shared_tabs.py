"""shared mode: one session per browser; every open tab follows sign-in and sign-out (it reloads
within 2 s of the change), and the browser client's token calls work (the streaming endpoint)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import Server
from .pages import (
    client_state,
    expect_signed_in,
    expect_signed_out,
    session_id,
    sign_out,
    sign_up,
)

PROPAGATION_MS = 2_000
"""A tab starts loading the page that shows another tab's change at most this long after it."""


@pytest.fixture(scope="module")
def server(server_factory: Callable[..., Server]) -> Server:
    return server_factory("shared")


def expect_followed(page: Any, changed_at: float, shows_the_change: Callable[[Any], None]) -> None:
    """``page`` follows a change another tab made by ``changed_at`` (``time.time()``): it shows
    it (``shows_the_change(page)``, with the usual wait), in a document whose navigation started
    at most ``PROPAGATION_MS`` after the change.

    The bound is on the tab's reaction (its client hears of the change and reloads), not on how
    long a loaded machine then takes to serve and render the page.
    """
    shows_the_change(page)
    started = page.evaluate("() => performance.timeOrigin") / 1000
    assert started - changed_at <= PROPAGATION_MS / 1000, (
        f"{page.url} reloaded {started - changed_at:.2f} s after the change"
    )


@pytest.fixture(params=["broadcast-channel", "storage-event"])
def tabs_context(request: pytest.FixtureRequest, context: Any) -> Any:
    """A browser profile; the storage-event variant hides BroadcastChannel from the client."""
    if request.param == "storage-event":
        context.add_init_script("delete window.BroadcastChannel;")
    return context


def test_sign_in_and_out_in_one_tab_reach_the_other_tab(
    server: Server, tabs_context: Any, email_factory: Callable[[str], str]
) -> None:
    first, second = tabs_context.new_page(), tabs_context.new_page()
    second.goto(server.url + "/")
    expect_signed_out(second)

    email = email_factory("shared")
    sign_up(first, server.url, email)
    expect_followed(second, time.time(), lambda tab: expect_signed_in(tab, email))
    assert session_id(second) == session_id(first)

    sign_out(second)
    expect_followed(first, time.time(), expect_signed_out)


def test_three_tabs_follow_the_javascript_api_and_the_forms(
    server: Server, tabs_context: Any, email_factory: Callable[[str], str]
) -> None:
    pages = [tabs_context.new_page() for _ in range(3)]
    for page in pages:
        page.goto(server.url + "/")
    email = email_factory("three")
    sign_up(pages[0], server.url, email)
    sign_out(pages[0])
    changed_at = time.time()
    for page in pages[1:]:
        expect_followed(page, changed_at, expect_signed_out)

    result = pages[2].evaluate(
        "([email, password]) => authbridge.signIn('password', {flow: 'signIn', email, password})",
        [email, "correct horse battery"],
    )
    changed_at = time.time()
    assert result["signedIn"] is True
    for page in pages[:2]:
        expect_followed(page, changed_at, lambda tab: expect_signed_in(tab, email))
    assert client_state(pages[2])["sessionId"] == result["sessionId"]

    pages[1].goto(server.url + "/notes")
    pages[1].evaluate("() => authbridge.signOut()")
    changed_at = time.time()
    for page in (pages[0], pages[2]):
        expect_followed(page, changed_at, expect_signed_out)


def test_a_protected_tab_is_sent_to_sign_in_when_another_tab_signs_out(
    server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    first, second = context.new_page(), context.new_page()
    email = email_factory("protected")
    sign_up(first, server.url, email)
    second.goto(server.url + "/notes")
    expect_signed_in(second, email)
    sign_out(first)
    sign_in_url = server.url + "/signin?next=%2Fnotes"
    expect_followed(second, time.time(), lambda tab: expect(tab).to_have_url(sign_in_url))


def test_streaming_call_carries_the_bearer_token(
    server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    page = context.new_page()
    sign_up(page, server.url, email_factory("stream"))
    page.goto(server.url + "/notes")
    user_id = client_state(page)["userId"]
    with page.expect_request("**/api/stream") as request_info:
        page.click("#stream-button")
    assert request_info.value.headers["authorization"].startswith("Bearer ")
    expect(page.locator("#stream-output")).to_contain_text(user_id)

    token = page.evaluate("() => authbridge.getToken()")
    assert token == page.evaluate("() => authbridge.getToken()")  # cached until near expiry
    who = server.get_json("/api/whoami", {"Authorization": f"Bearer {token}"})
    assert who["userId"] == user_id
