"""The auth event stream at the engine: reuse detection, session revocation, hook failures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import AuthFactory, FakeClock

from authbridge import RefreshTokenReused
from authbridge.events import AuthEvent

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
