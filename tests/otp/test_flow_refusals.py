"""The email flows refusing malformed requests with ``InvalidParams`` (naming the field, never
echoing a value), and an optional verification email that cannot be sent: the sign-up still
signs in, and the failure is logged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from authbridge import Auth, EmailConfig, PasswordProvider
from tests.toolkit.engines import PASSWORD, AuthFactory

from .conftest import SmtpServer, client_for, code_in

ADA = "ada@example.com"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """Refused before the store is asked anything: SQLite only."""
    return f"sqlite+aiosqlite:///{tmp_path}/auth.db"


async def sign_in(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await client.post("/api/auth/signin", json={"provider": "password", "params": params})


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"flow": "reset"}, "email"),
        ({"flow": "reset", "email": 42}, "email"),
        ({"flow": "reset-verification", "email": ADA, "code": "12345678"}, "newPassword"),
        ({"flow": "reset-verification", "newPassword": "a brand new passphrase"}, "email"),
        (
            {"flow": "reset-verification", "email": ADA, "newPassword": "a brand new passphrase"},
            "email and code",
        ),
    ],
    ids=["reset-no-email", "reset-email-not-text", "no-new-password", "no-email", "no-code"],
)
async def test_a_reset_request_missing_a_field_names_it(
    auth_factory: AuthFactory, smtp_server: SmtpServer, params: dict[str, Any], field: str
) -> None:
    auth = await auth_factory(
        email=EmailConfig(smtp_url=smtp_server.url),
        auth_kwargs={"providers": [PasswordProvider()]},
    )
    async with client_for(auth) as client:
        response = await sign_in(client, **params)
    assert response.status_code == 400
    assert response.json()["error"] == "InvalidParams"
    assert field in response.json().get("detail", response.text)
    assert smtp_server.mailbox.messages == []


async def test_a_reset_for_an_account_deleted_meanwhile_is_an_invalid_code(
    auth_factory: AuthFactory, smtp_server: SmtpServer
) -> None:
    auth: Auth = await auth_factory(
        email=EmailConfig(smtp_url=smtp_server.url),
        auth_kwargs={"providers": [PasswordProvider()]},
    )
    signed = await auth.sign_up_with_password(ADA, PASSWORD)
    async with client_for(auth) as client:
        assert (await sign_in(client, flow="reset", email=ADA)).status_code == 200
        code = code_in(smtp_server.mailbox.last(ADA))
        await auth.delete_user(signed.user_id)
        response = await sign_in(
            client,
            flow="reset-verification",
            email=ADA,
            code=code,
            newPassword="a brand new passphrase",
        )
    assert (response.status_code, response.json()["error"]) == (400, "InvalidCode")


async def test_an_optional_verification_that_cannot_be_sent_still_signs_in(
    auth_factory: AuthFactory, down_smtp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    auth = await auth_factory(
        email=EmailConfig(smtp_url=down_smtp_url, smtp_attempts=1, verification="optional"),
        auth_kwargs={"providers": [PasswordProvider()]},
    )
    async with client_for(auth) as client:
        up = await sign_in(client, flow="signUp", email=ADA, password=PASSWORD)
    assert up.status_code == 200 and up.json()["signedIn"] is True
    assert "verification email after sign-up not sent: EmailUnavailable" in caplog.text
