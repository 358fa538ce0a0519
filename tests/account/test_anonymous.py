"""Anonymous users: try the app, then sign up (same user) or sign in (data moved by the hook);
idle anonymous users are cleaned up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from authbridge import AnonymousProvider, PasswordProvider, SignInResult
from authbridge.providers import (
    Outcome,
    ProviderContext,
    ProviderRoute,
    SignedIn,
    SignInRequest,
)
from tests.toolkit.engines import PASSWORD, AuthFactory

from .conftest import Demo


async def test_anonymous_sign_in_creates_a_guest_with_a_normal_session(demo: Demo) -> None:
    browser = demo.browser()
    signed = await demo.sign_in(browser, "anonymous")
    assert signed["signedIn"] is True
    user = await demo.app.auth.get_user(signed["userId"])
    assert user is not None and user.is_anonymous and user.email is None
    account = (await browser.get("/api/auth/account")).json()
    assert account["user"]["isAnonymous"] is True
    assert account["methods"] == [] and account["sessions"] == 1


async def test_anonymous_sign_in_again_keeps_the_same_guest(demo: Demo) -> None:
    browser = demo.browser()
    first = await demo.sign_in(browser, "anonymous")
    second = await demo.sign_in(browser, "anonymous")
    assert second["userId"] == first["userId"]
    assert second["sessionId"] != first["sessionId"]


async def test_anonymous_sign_in_is_refused_unless_enabled(demo: Demo) -> None:
    demo.app.auth.config = demo.app.auth.config.replace(anonymous=False)
    body = await demo.sign_in(demo.browser(), "anonymous")
    assert body["error"] == "InvalidParams"


async def test_signing_up_while_anonymous_keeps_the_user_and_its_notes(demo: Demo) -> None:
    browser = demo.browser()
    guest = await demo.sign_in(browser, "anonymous")
    await demo.add_note(browser, "written as a guest")
    signed = await demo.sign_up(browser, "guest@example.com")
    assert signed["userId"] == guest["userId"]
    assert signed["sessionId"] != guest["sessionId"]
    user = await demo.app.auth.get_user(guest["userId"])
    assert user is not None and not user.is_anonymous and user.email == "guest@example.com"
    assert await demo.notes_of(guest["userId"]) == ["written as a guest"]
    page = await browser.get("/notes", headers={"accept": "text/html"})
    assert "written as a guest" in page.text
    # The guest session ended; the password works from another browser.
    assert await demo.app.auth.get_session(guest["sessionId"]) is None
    other = await demo.sign_in(
        demo.browser(), "password", flow="signIn", email="guest@example.com", password=PASSWORD
    )
    assert other["userId"] == guest["userId"]
    assert "anonymous_upgraded" in demo.kinds()


async def test_signing_in_while_anonymous_moves_the_notes_through_the_hook(demo: Demo) -> None:
    owner = demo.browser()
    existing = await demo.sign_up(owner, "owner@example.com")
    await demo.add_note(owner, "older note")
    guest_browser = demo.browser()
    guest = await demo.sign_in(guest_browser, "anonymous")
    await demo.add_note(guest_browser, "guest note")
    signed = await demo.sign_in(
        guest_browser, "password", flow="signIn", email="owner@example.com", password=PASSWORD
    )
    assert signed["userId"] == existing["userId"]
    assert await demo.notes_of(existing["userId"]) == ["older note", "guest note"]
    assert await demo.app.auth.get_user(guest["userId"]) is None
    assert (await demo.rows_of(guest["userId"], [guest["sessionId"]]))["users"] == 0
    deleted = [e for e in demo.events if e.kind == "account_deleted"]
    assert [e.user_id for e in deleted] == [guest["userId"]]


async def test_a_signed_in_user_signing_up_again_is_not_merged(demo: Demo) -> None:
    browser = demo.browser()
    first = await demo.sign_up(browser, "first@example.com")
    second = await demo.sign_up(browser, "second@example.com")
    assert second["userId"] != first["userId"]
    assert await demo.app.auth.get_user(first["userId"]) is not None


async def test_cleanup_removes_idle_guests_and_keeps_active_ones(demo: Demo) -> None:
    idle_browser, active_browser = demo.browser(), demo.browser()
    idle = await demo.sign_in(idle_browser, "anonymous")
    await demo.add_note(idle_browser, "forgotten")
    demo.clock.advance(timedelta(days=20))
    active = await demo.sign_in(active_browser, "anonymous")
    demo.clock.advance(timedelta(days=10, seconds=1))
    report = await demo.app.auth.cleanup()
    assert report.anonymous_users == 1
    assert await demo.app.auth.get_user(idle["userId"]) is None
    assert await demo.notes_of(idle["userId"]) == []
    assert await demo.app.auth.get_user(active["userId"]) is not None
    # Its refresh token no longer works either.
    assert (await idle_browser.post("/api/auth/refresh")).status_code == 401


class _AttachToCurrentUser:
    """A method that attaches itself to the browser's current user (like an OAuth link)."""

    id = "attach"

    def routes(self) -> Sequence[ProviderRoute]:
        return ()

    async def sign_in(
        self, ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
    ) -> Outcome:
        assert request.user_id is not None
        return SignedIn(request.user_id)


async def test_a_method_attached_to_the_guest_itself_makes_it_a_regular_user(
    auth_factory: AuthFactory,
) -> None:
    auth = await auth_factory(
        {"providers": [PasswordProvider(), AnonymousProvider(), _AttachToCurrentUser()]},
        anonymous=True,
    )
    guest = await auth.sign_in("anonymous", {})
    request = SignInRequest(user_id=guest.user_id, session_id=guest.session_id)
    attached = await auth.sign_in_step("attach", {}, request)
    assert isinstance(attached, SignInResult) and attached.user_id == guest.user_id
    user = await auth.get_user(guest.user_id)
    assert user is not None and not user.is_anonymous
