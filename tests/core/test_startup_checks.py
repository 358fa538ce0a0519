"""No silent failures at startup: missing tables, typos in variables, a plain-http site URL."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from authbridge import Auth, AuthConfig, ConfigError
from authbridge.config import unknown_env_names
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import FAST_PASSWORDS, signing_key


async def test_a_fresh_sqlite_file_gets_its_tables_and_says_so_once(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    caplog.set_level(logging.INFO, "authbridge")
    async with Auth(AuthConfig(database_url=url, password=FAST_PASSWORDS), clock=clock) as auth:
        result = await auth.sign_in(
            "password", {"flow": "signUp", "email": "a@example.com", "password": "long enough 1"}
        )
        assert result.user_id
    async with Auth(AuthConfig(database_url=url, password=FAST_PASSWORDS), clock=clock):
        pass
    created = [r for r in caplog.records if "created its tables" in r.getMessage()]
    assert len(created) == 1


@pytest.mark.pg
async def test_missing_tables_on_postgresql_name_the_fix(pg_url: str, clock: FakeClock) -> None:
    config = AuthConfig(database_url=pg_url, jwt_private_keys=(signing_key(),))
    auth = Auth(config, clock=clock)
    with pytest.raises(ConfigError) as caught:
        await auth.open()
    await auth.close()
    message = str(caught.value)
    assert "authbridge db upgrade" in message
    assert "create_tables=True" in message
    assert "users" in message


async def test_a_partial_schema_on_sqlite_is_an_error_not_a_silent_create(
    tmp_path: Path, clock: FakeClock
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/partial.db"
    first = Auth(AuthConfig(database_url=url), clock=clock, create_tables=True)
    async with first, first.store.transaction() as conn:
        await conn.run_sync(lambda sync: first.store.tables.revocations.drop(sync))
    auth = Auth(AuthConfig(database_url=url), clock=clock)
    with pytest.raises(ConfigError, match=r"auth_revocations.*authbridge db upgrade"):
        await auth.open()
    await auth.close()


def test_unknown_variables_are_reported_with_the_closest_valid_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {
        "AUTHBRIDGE_SESION_SHARING": "per_tab",
        "AUTHBRIDGE_SITE_URL": "https://example.com",
        "AUTHBRIDGE_OAUTH_GITHUB_CLIENT_ID": "x",
        "AUTHBRIDGE_QQQ": "1",
        "OTHER_SESION_SHARING": "1",
    }
    assert unknown_env_names(env) == [
        ("AUTHBRIDGE_QQQ", None),
        ("AUTHBRIDGE_SESION_SHARING", "AUTHBRIDGE_SESSION_SHARING"),
    ]
    with caplog.at_level(logging.WARNING, "authbridge.config"):
        AuthConfig.from_env(env)
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "AUTHBRIDGE_SESION_SHARING" in m and "did you mean AUTHBRIDGE_SESSION_SHARING?" in m
        for m in messages
    )


@pytest.mark.parametrize(
    ("site_url", "warns"),
    [
        ("http://example.com", True),
        ("http://10.0.0.5:8000", True),
        ("https://example.com", False),
        ("http://localhost:8000", False),
        ("http://127.0.0.1:8000", False),
        ("http://testserver", False),
    ],
)
async def test_a_plain_http_site_url_on_a_public_host_warns_at_startup(
    tmp_path: Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    site_url: str,
    warns: bool,
) -> None:
    config = AuthConfig(database_url=f"sqlite+aiosqlite:///{tmp_path}/a.db", site_url=site_url)
    with caplog.at_level(logging.WARNING, "authbridge"):
        async with Auth(config, clock=clock, create_tables=True):
            pass
    warned = any("Secure cookies" in r.getMessage() for r in caplog.records)
    assert warned is warns
