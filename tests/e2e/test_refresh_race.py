"""Refresh races: several tabs reload (and ask for tokens) at once as a short-lived JWT expires.
Nobody is signed out, and the tabs stay on one session."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import Server
from .pages import client_state, expect_signed_in, session_id, sign_up

JWT_SECONDS = 3
TABS = 4
ROUNDS = 2


@pytest.fixture(scope="module")
def shared_server(server_factory: Callable[..., Server]) -> Server:
    return server_factory("shared", jwt_duration=f"{JWT_SECONDS}s")


@pytest.fixture(scope="module")
def per_tab_server(server_factory: Callable[..., Server]) -> Server:
    return server_factory("per_tab", jwt_duration=f"{JWT_SECONDS}s")


def reload_all_at_once(pages: list[Any]) -> list[int]:
    """Start every reload before waiting for any; wait (bounded) until each has loaded again.
    Returns how many documents each tab loaded (more than one: a corrective re-request)."""
    loads = [0] * len(pages)
    handlers = []
    for i, page in enumerate(pages):

        def on_load(_: Any, i: int = i) -> None:
            loads[i] += 1

        page.on("load", on_load)
        handlers.append(on_load)
    for page in pages:
        page.evaluate("() => setTimeout(() => location.reload(), 0)")
    deadline = time.monotonic() + 10
    while min(loads) == 0:
        assert time.monotonic() < deadline, f"reloads did not finish: {loads}"
        pages[0].wait_for_timeout(50)
    pages[0].wait_for_timeout(300)  # let a corrective re-request start, if one is coming
    for page, handler in zip(pages, handlers):
        page.remove_listener("load", handler)
    return loads


def wait_past_expiry(page: Any) -> None:
    page.wait_for_timeout(JWT_SECONDS * 1000 + 500)


def token_subject(token: str) -> str:
    """The ``sub`` claim (``userId|sessionId``) of a JWT, read without verifying it."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])


def assert_concurrent_calls_succeed(pages: list[Any], session: str) -> None:
    """Every tab asks for a token (three calls each) at once; all get one, for the session.

    The tokens are read, not sent to the API: a 3 s JWT (2 to 3 s of use, ``exp`` being whole
    seconds) sent behind a dozen other requests to a loaded server can expire before the server
    reads it, which says nothing about the refresh race. A lost race shows as a ``null`` token
    (the token call was refused: the client signed out), another session's token, a revoked
    session on the reloads that follow, or "reused" in the server's log."""
    subject = f"{client_state(pages[0])['userId']}|{session}"
    for page in pages:
        page.evaluate(
            "() => { window.calls = Promise.all([1, 2, 3].map(() => authbridge.getToken())); }"
        )
    for page in pages:
        tokens = page.evaluate("() => window.calls")
        assert None not in tokens, f"{page.url}: a token call was refused: {tokens}"
        assert [token_subject(token) for token in tokens] == [subject] * 3


def test_tabs_reloading_as_the_token_expires_stay_signed_in(
    shared_server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    email = email_factory("race")
    pages = [context.new_page() for _ in range(TABS)]
    sign_up(pages[0], shared_server.url, email)
    for page in pages[1:]:
        page.goto(shared_server.url + "/notes")
        expect_signed_in(page, email)
    session = session_id(pages[0])

    for _ in range(ROUNDS):
        wait_past_expiry(pages[0])
        assert reload_all_at_once(pages) == [1] * TABS
        for page in pages:
            expect_signed_in(page, email)
            assert session_id(page) == session

    wait_past_expiry(pages[0])
    assert_concurrent_calls_succeed(pages, session)
    pages[0].reload()
    expect_signed_in(pages[0], email)
    assert "reused" not in shared_server.log.read_text()


def test_token_calls_without_web_locks_fall_back_to_a_lease(
    shared_server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    context.add_init_script("delete Navigator.prototype.locks;")
    email = email_factory("nolocks")
    pages = [context.new_page() for _ in range(3)]
    sign_up(pages[0], shared_server.url, email)
    for page in pages[1:]:
        page.goto(shared_server.url + "/")
    assert pages[1].evaluate("() => navigator.locks") is None
    session = session_id(pages[0])
    wait_past_expiry(pages[0])
    assert_concurrent_calls_succeed(pages, session)
    for page in pages:
        page.reload()
        expect_signed_in(page, email)
    assert "reused" not in shared_server.log.read_text()


def test_per_tab_tabs_reloading_together_each_keep_their_user(
    per_tab_server: Server, context: Any, email_factory: Callable[[str], str]
) -> None:
    pages = [context.new_page() for _ in range(3)]
    emails = [email_factory(f"tab{i}") for i in range(len(pages))]
    for page, email in zip(pages, emails):
        sign_up(page, per_tab_server.url, email)
    sessions = [session_id(page) for page in pages]

    for _ in range(ROUNDS):
        wait_past_expiry(pages[0])
        loads = reload_all_at_once(pages)
        assert max(loads) <= 3, loads  # hint collisions cost at most two corrections
        for page, email, session in zip(pages, emails, sessions):
            expect_signed_in(page, email)
            assert session_id(page) == session
    assert "reused" not in per_tab_server.log.read_text()
