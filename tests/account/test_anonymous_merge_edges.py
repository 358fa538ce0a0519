"""A guest who signs in to an existing account: without an ``on_anonymous_merge`` hook the guest
is simply removed; when the hook fails, the guest is kept (nothing of theirs is lost) and the
sign-in still succeeds. Idle guests are removed in bounded batches."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.toolkit.engines import PASSWORD

from .conftest import Demo


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The merge is decided by the engine, the same on both backends: SQLite only."""
    return f"sqlite+aiosqlite:///{tmp_path}/auth.db"


async def _guest_then_existing(demo: Demo) -> tuple[dict[str, object], dict[str, object]]:
    owner = demo.browser()
    existing = await demo.sign_up(owner, "owner@example.com")
    guest_browser = demo.browser()
    guest = await demo.sign_in(guest_browser, "anonymous")
    await demo.add_note(guest_browser, "guest note")
    signed = await demo.sign_in(
        guest_browser, "password", flow="signIn", email="owner@example.com", password=PASSWORD
    )
    assert signed["userId"] == existing["userId"]
    return guest, existing


async def test_without_a_merge_hook_the_guest_is_removed(demo: Demo) -> None:
    demo.app.auth.on_anonymous_merge = None
    guest, existing = await _guest_then_existing(demo)
    assert await demo.app.auth.get_user(str(guest["userId"])) is None
    assert await demo.notes_of(str(existing["userId"])) == []
    assert "account_deleted" in demo.kinds()


async def test_a_failing_merge_hook_keeps_the_guest_and_signs_in(
    demo: Demo, caplog: pytest.LogCaptureFixture
) -> None:
    async def fail(anonymous_user_id: str, user_id: str) -> None:
        raise RuntimeError("notes service down")

    demo.app.auth.on_anonymous_merge = fail
    guest, existing = await _guest_then_existing(demo)
    assert await demo.app.auth.get_user(str(guest["userId"])) is not None
    assert await demo.notes_of(str(guest["userId"])) == ["guest note"]
    assert "on_anonymous_merge failed; the anonymous user is kept" in caplog.text
    assert "account_deleted" not in demo.kinds()
    assert existing["userId"]


async def test_idle_guests_are_removed_batch_by_batch_up_to_the_limit(demo: Demo) -> None:
    guests = [await demo.sign_in(demo.browser(), "anonymous") for _ in range(3)]
    demo.clock.advance(timedelta(days=30, seconds=1))
    auth = demo.app.auth
    assert await auth.cleanup_anonymous(batch_size=1, max_batches=2) == 2
    remaining = [g for g in guests if await auth.get_user(str(g["userId"])) is not None]
    assert len(remaining) == 1
    assert await auth.cleanup_anonymous(batch_size=1) == 1
    assert await auth.cleanup_anonymous(batch_size=1) == 0


async def test_deleting_a_user_that_does_not_exist_records_nothing(demo: Demo) -> None:
    assert await demo.app.auth.delete_user("no-such-user") is False
    assert "account_deleted" not in demo.kinds()
