"""The auth event stream at the engine: reuse detection, session revocation, hook failures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest

from authbridge import PasswordProvider, RefreshTokenReused
from authbridge.events import AuthEvent
from authbridge.providers import (
    Outcome,
    ProviderContext,
    ProviderRoute,
    SignedIn,
    SignInRequest,
)
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory

PASSWORD = "correct horse battery"


async def test_refresh_token_reuse_is_an_event_with_the_user_and_session(
    auth_factory: AuthFactory, clock: FakeClock
) -> None:
    events: list[AuthEvent] = []
    auth = await auth_factory({"on_event": events.append})
    signed = await auth.sign_up_with_password("reuse@example.com", PASSWORD)
    await auth.refresh(signed.tokens.refresh_token)
    clock.advance(timedelta(seconds=11))
    with pytest.raises(RefreshTokenReused):
        await auth.refresh(signed.tokens.refresh_token)
    reused = [e for e in events if e.kind == "refresh_token_reused"]
    assert [(e.user_id, e.session_id) for e in reused] == [(signed.user_id, signed.session_id)]


async def test_an_async_hook_receives_events_and_a_failing_hook_breaks_nothing(
    auth_factory: AuthFactory, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    async def flaky(event: AuthEvent) -> None:
        seen.append(event.kind)
        raise RuntimeError("audit sink down")

    auth = await auth_factory({"on_event": flaky})
    caplog.set_level("INFO", logger="authbridge.events")
    signed = await auth.sign_up_with_password("flaky@example.com", PASSWORD)
    await auth.sign_out(signed.session_id, user_id=signed.user_id)
    assert seen == ["sign_in", "sign_out"]
    assert "the on_event hook failed" in caplog.text
    assert "auth event sign_in" in caplog.text  # logged at INFO without any hook too
    assert PASSWORD not in caplog.text


class _Linking:
    """Attaches an identity to the browser's current user, as an OAuth link flow does."""

    id = "linking"

    def routes(self) -> Sequence[ProviderRoute]:
        return ()

    async def sign_in(
        self, ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
    ) -> Outcome:
        assert request.user_id is not None
        return SignedIn(request.user_id, linked="octocat")


async def test_a_provider_that_links_an_identity_records_account_linked(
    auth_factory: AuthFactory,
) -> None:
    events: list[AuthEvent] = []
    auth = await auth_factory(
        {"on_event": events.append, "providers": [PasswordProvider(), _Linking()]}
    )
    signed = await auth.sign_up_with_password("linker@example.com", PASSWORD)
    request = SignInRequest(user_id=signed.user_id, session_id=signed.session_id, ip="10.0.0.1")
    await auth.sign_in_step("linking", {}, request)
    [linked] = [e for e in events if e.kind == "account_linked"]
    assert (linked.user_id, linked.provider, linked.identifier, linked.ip) == (
        signed.user_id,
        "linking",
        "octocat",
        "10.0.0.1",
    )
