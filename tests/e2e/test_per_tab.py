"""per_tab mode: each tab is its own session, and every server-rendered page shows the state of
the tab that asked for it (DESIGN §11)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import Server
from .pages import (
    Navigations,
    client_state,
    expect_signed_in,
    expect_signed_out,
    session_id,
    sign_in,
    sign_out,
    sign_up,
)

MAX_TAB_SLOTS = 6
"""``AuthConfig.max_tab_slots``'s default."""


@pytest.fixture(scope="module")
def server(server_factory: Callable[..., Server]) -> Server:
    return server_factory("per_tab")


def click_nav(page: Any, link: str) -> None:
    with page.expect_navigation():
        page.click(f"nav a[href='{link}']")


def page_user(page: Any) -> str:
    return str(page.locator("#user-email").text_content())


def add_note(page: Any, text: str) -> None:
    page.fill("form#note-form input[name=text]", text)
    with page.expect_navigation():
        page.click("form#note-form button")


def test_two_tabs_keep_two_users_through_every_kind_of_navigation(
    server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    alice_tab, bob_tab = context.new_page(), context.new_page()
    alice, bob = email_factory("alice"), email_factory("bob")

    sign_up(alice_tab, server.url, alice)
    bob_tab.goto(server.url + "/")
    expect_signed_out(bob_tab)  # a new tab starts signed out
    sign_up(bob_tab, server.url, bob)
    alice_session, bob_session = session_id(alice_tab), session_id(bob_tab)
    assert alice_session != bob_session

    def both_tabs_still_hold_their_own_user() -> None:
        expect_signed_in(alice_tab, alice)
        expect_signed_in(bob_tab, bob)
        assert session_id(alice_tab) == alice_session
        assert session_id(bob_tab) == bob_session

    alice_nav, bob_nav = Navigations(alice_tab), Navigations(bob_tab)

    def step(action: Callable[[Any], None], documents: int, cached: bool = False) -> None:
        """Run the action in both tabs: each renders its own user with no re-request (history
        steps may come from the back/forward cache, with no request at all)."""
        for page, nav in ((alice_tab, alice_nav), (bob_tab, bob_nav)):
            nav.take(0)
            action(page)
            both_tabs_still_hold_their_own_user()
            assert nav.take() in ((0, documents) if cached else (documents,)), page.url

    step(lambda page: page.reload(), 1)
    step(lambda page: click_nav(page, "/notes"), 1)
    step(lambda page: add_note(page, f"{page_user(page)}'s note"), 2)  # POST, 303, GET
    expect(alice_tab.locator("ul#notes > li.note")).to_have_text([f"{alice}'s note"])
    expect(bob_tab.locator("ul#notes > li.note")).to_have_text([f"{bob}'s note"])
    step(lambda page: click_nav(page, "/sessions"), 1)
    expect(alice_tab.locator(f"li.session[data-session-id='{alice_session}']")).to_have_count(1)
    expect(alice_tab.locator(f"li.session[data-session-id='{bob_session}']")).to_have_count(0)
    step(lambda page: page.go_back(), 1, cached=True)
    expect(alice_tab).to_have_url(server.url + "/notes")
    step(lambda page: page.go_forward(), 1, cached=True)
    expect(alice_tab).to_have_url(server.url + "/sessions")
    step(lambda page: page.goto(server.url + "/"), 1)  # a typed URL in an existing tab

    newcomer = context.new_page()
    newcomer.goto(server.url + "/notes")
    expect(newcomer).to_have_url(server.url + "/signin?next=%2Fnotes")
    expect_signed_out(newcomer)

    sign_out(bob_tab)
    alice_tab.reload()
    expect_signed_in(alice_tab, alice)
    bob_tab.reload()
    expect_signed_out(bob_tab)
    sign_in(bob_tab, server.url, bob)
    expect_signed_in(alice_tab, alice)


def test_javascript_calls_use_the_tab_own_session(
    server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    alice_tab, bob_tab = context.new_page(), context.new_page()
    alice, bob = email_factory("alice"), email_factory("bob")
    sign_up(alice_tab, server.url, alice)
    bob_tab.goto(server.url + "/")
    result = bob_tab.evaluate(
        "([email, password]) => authbridge.signIn('password', {flow: 'signUp', email, password})",
        [bob, "correct horse battery"],
    )
    bob_tab.reload()
    expect_signed_in(bob_tab, bob)
    assert session_id(bob_tab) == result["sessionId"]

    for page in (alice_tab, bob_tab):
        page.goto(server.url + "/notes")
        with page.expect_request("**/api/stream") as request_info:
            page.click("#stream-button")
        assert request_info.value.headers["authorization"].startswith("Bearer ")
        expect(page.locator("#stream-output")).to_contain_text(client_state(page)["userId"])
        who = page.evaluate("() => authbridge.fetch('/api/whoami').then(r => r.json())")
        assert who["sessionId"] == session_id(page)

    bob_tab.evaluate("() => authbridge.signOut()")
    bob_tab.reload()
    expect_signed_out(bob_tab)
    alice_tab.reload()
    expect_signed_in(alice_tab, alice)


def test_a_duplicated_tab_takes_its_own_id_and_no_share_of_the_session(
    server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    original = context.new_page()
    alice = email_factory("alice")
    sign_up(original, server.url, alice)
    original.goto(server.url + "/notes")
    original_tab = client_state(original)["tab"]

    # window.open copies sessionStorage, as "Duplicate tab" does.
    with context.expect_page() as opened:
        original.evaluate("() => window.open(location.href)")
    duplicate = opened.value
    duplicate.wait_for_load_state()
    assert duplicate.evaluate("() => sessionStorage.length") > 0  # the copy happened
    duplicate.wait_for_function(
        "original => window.authbridge && authbridge.tab !== original",
        arg=original_tab,
        timeout=3_000,
    )
    expect(duplicate).to_have_url(server.url + "/signin?next=%2Fnotes")
    expect_signed_out(duplicate)
    expect(duplicate.locator("html")).to_be_visible()

    original.reload()
    expect_signed_in(original, alice)
    assert client_state(original)["tab"] == original_tab

    other = email_factory("other")
    sign_up(duplicate, server.url, other)
    original.reload()
    expect_signed_in(original, alice)
    duplicate.reload()
    expect_signed_in(duplicate, other)


def test_the_cookie_header_stays_bounded_however_many_tabs_sign_in(
    server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    pages = []
    for i in range(MAX_TAB_SLOTS + 2):
        page = context.new_page()
        sign_up(page, server.url, email_factory(f"user{i}"))
        pages.append(page)
    cookies = {c["name"]: c["value"] for c in context.cookies(server.url)}
    refresh_slots = [n for n in cookies if n.startswith("authbridge.refresh.")]
    assert len(refresh_slots) == MAX_TAB_SLOTS
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    assert len(header) < 4_500, len(header)

    # The least recently used tabs lost their slot; the newest keep theirs.
    pages[0].reload()
    expect_signed_out(pages[0])
    pages[-1].reload()
    expect_signed_in(pages[-1], pages[-1].locator("#user-email").text_content() or "")


SHOWN_USERS_SCRIPT = """
new MutationObserver((records, observer) => {
  const user = document.getElementById("user-email");
  if (!user || !document.body) return;
  observer.disconnect();
  const shown = getComputedStyle(document.documentElement).visibility !== "hidden";
  const seen = (localStorage.getItem("shown") || "") + (shown ? user.textContent : "-");
  localStorage.setItem("shown", seen + ";");
}).observe(document, { childList: true, subtree: true });
"""
"""Records, per document, whose e-mail was on screen when the page showed a user ("-" while the
client kept the page hidden)."""

RENDERED_USERS_SCRIPT = """
new MutationObserver((records, observer) => {
  const island = document.getElementById("authbridge-state");
  if (!island || !island.nextElementSibling) return;
  observer.disconnect();
  const seen = (localStorage.getItem("rendered") || "") + JSON.parse(island.textContent).userId;
  localStorage.setItem("rendered", seen + ";");
}).observe(document, { childList: true, subtree: true });
"""
"""Records, per document, the user the server rendered it for (its bootstrap's ``userId``). It
reads the bootstrap once the client's script follows it, and the callback runs before that
script does: a document the client re-requests at once is recorded all the same."""


def serve_for_another_tab(context: Any, page: Any, other_tab: str, times: int) -> None:
    """Make the next ``times`` document requests of ``page`` carry ``other_tab``'s hint, as when
    two tabs navigate at the same moment (or a server ignores hints)."""
    remaining = [times]

    def swap(route: Any) -> None:
        if route.request.is_navigation_request() and remaining[0] > 0:
            remaining[0] -= 1
            # Cookies are attached after interception: overwrite the hint the tab just set.
            hint = {"name": "authbridge.tab", "value": other_tab, "url": route.request.url}
            context.add_cookies([hint])
        route.continue_()

    page.route("**/*", swap)


def test_a_page_rendered_for_another_tab_is_re_requested_before_it_shows(
    server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    alice_tab, bob_tab = context.new_page(), context.new_page()
    alice, bob = email_factory("alice"), email_factory("bob")
    sign_up(alice_tab, server.url, alice)
    sign_up(bob_tab, server.url, bob)
    serve_for_another_tab(context, bob_tab, client_state(alice_tab)["tab"], times=1)
    bob_nav = Navigations(bob_tab)
    bob_tab.add_init_script(RENDERED_USERS_SCRIPT)
    bob_tab.add_init_script(SHOWN_USERS_SCRIPT)
    click_nav(bob_tab, "/notes")
    expect_signed_in(bob_tab, bob)
    assert bob_nav.take() == 2
    # The server rendered the other tab's page, which the client replaced before showing it.
    users = [client_state(tab)["userId"] for tab in (alice_tab, bob_tab)]
    assert bob_tab.evaluate("() => localStorage.getItem('rendered')") == "{};{};".format(*users)
    assert alice not in bob_tab.evaluate("() => localStorage.getItem('shown')")


def test_corrective_re_requests_are_bounded(
    server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    alice_tab, bob_tab = context.new_page(), context.new_page()
    alice, bob = email_factory("alice"), email_factory("bob")
    sign_up(alice_tab, server.url, alice)
    sign_up(bob_tab, server.url, bob)
    serve_for_another_tab(context, bob_tab, client_state(alice_tab)["tab"], times=100)
    bob_nav = Navigations(bob_tab)
    click_nav(bob_tab, "/notes")
    bob_tab.wait_for_timeout(1_000)
    assert bob_nav.take() == 3  # the navigation and two corrections, then no loop
    expect(bob_tab.locator("body")).to_be_visible()


def test_a_link_opened_in_a_new_tab_starts_signed_out(
    server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    alice_tab = context.new_page()
    alice = email_factory("alice")
    sign_up(alice_tab, server.url, alice)
    with context.expect_page() as opened:
        alice_tab.click("nav a[href='/notes']", modifiers=["Control"])
    new_tab = opened.value
    new_tab.wait_for_load_state()
    expect(new_tab).to_have_url(server.url + "/signin?next=%2Fnotes")
    expect_signed_out(new_tab)
    assert "authbridge.tab" not in {c["name"] for c in context.cookies(server.url)}
    alice_tab.reload()
    expect_signed_in(alice_tab, alice)
