"""The notes demo's security pages: re-authentication notice, the second-factor form, and the
security settings page behind a recent-sign-in rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from authbridge import AuthConfig
from examples.notes.app import create_app
from tests.toolkit.clock import FakeClock
from tests.toolkit.databases import sqlite_url
from tests.toolkit.engines import FAST_PASSWORDS, PASSWORD

from .example_helpers import HTML, unique_email


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, FakeClock]]:
    clock = FakeClock()
    config = AuthConfig(
        database_url=sqlite_url(tmp_path, "demo"),
        site_url="https://testserver",
        password=FAST_PASSWORDS,
        totp=True,
        passkeys=True,
    )
    app = create_app(config, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        yield client, clock
    await app.auth.close()


async def test_the_sign_in_page_shows_the_reauth_notice_the_code_form_and_the_passkey_button(
    setup: tuple[httpx.AsyncClient, FakeClock],
) -> None:
    client, _ = setup
    page = (await client.get("/signin?reauth=1&factor=totp&next=%2Fnotes", headers=HTML)).text
    assert 'id="reauth-notice"' in page
    assert 'id="totp-form"' in page and 'name="code"' in page and 'value="/notes"' in page
    assert 'id="recovery-form"' in page and 'id="passkey-signin"' in page
    plain = (await client.get("/signin", headers=HTML)).text
    assert 'id="reauth-notice"' not in plain and 'id="totp-form"' not in plain


async def test_security_settings_need_a_recent_sign_in(
    setup: tuple[httpx.AsyncClient, FakeClock],
) -> None:
    client, clock = setup
    signed = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": unique_email(), "password": PASSWORD},
        },
    )
    assert signed.status_code == 200
    fresh = await client.get("/settings/security", headers=HTML)
    assert fresh.status_code == 200
    assert 'id="totp-settings" data-enabled="false"' in fresh.text
    assert 'id="passkey-settings"' in fresh.text
    clock.now += timedelta(minutes=10, seconds=1)
    stale = await client.get("/settings/security", headers=HTML)
    assert stale.status_code == 303
    assert stale.headers["location"] == "/signin?reauth=1&next=%2Fsettings%2Fsecurity"
