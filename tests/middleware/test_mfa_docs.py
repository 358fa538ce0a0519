"""Every ```python block of docs/passkeys-and-2fa.md runs; the step-up example answers, and the
events example tells the user when a factor is added or removed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "passkeys-and-2fa.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_page_has_python_examples() -> None:
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
async def test_docs_python_block_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/docs.db")
    namespace: dict[str, Any] = {"__name__": f"docs_block_{index}"}
    exec(compile(BLOCKS[index], f"docs block {index}", "exec"), namespace)
    auth = namespace["auth"]
    try:
        if "outbox" in namespace:
            await _exercise_factor_notices(namespace["app"], namespace["outbox"])
        elif "app" in namespace:
            transport = httpx.ASGITransport(app=namespace["app"])
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
                anonymous = await c.post("/account/delete")
                assert anonymous.status_code == 401
                assert anonymous.json() == {"error": "RecentAuthRequired"}
                signed = await c.post(
                    "/api/auth/signin",
                    json={
                        "provider": "password",
                        "params": {
                            "flow": "signUp",
                            "email": "docs@example.com",
                            "password": "docs-password",
                        },
                    },
                )
                deleted = await c.post("/account/delete")
                assert deleted.json() == {"deleted": signed.json()["userId"], "how": ["pwd"]}
                settings = await c.get("/settings/security/x", headers={"accept": "text/html"})
                assert settings.status_code == 404  # allowed through (fresh); no such route
        else:
            assert set(auth.providers) == {"password", "totp", "passkey"}
            assert "passkeys/register" in auth.provider_routes
    finally:
        await auth.close()


async def _exercise_factor_notices(app: Any, outbox: list[tuple[str, str]]) -> None:
    """Enabling then disabling TOTP puts one notice each in the example's outbox."""
    json_ct = {"accept": "application/json", "content-type": "application/json"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers={"user-agent": "DocsTest"}
    ) as c:
        signed = await c.post(
            "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": "signUp", "email": "f@example.com", "password": "docs-password"},
            },
        )
        user_id = signed.json()["userId"]
        secret = (await c.post("/api/auth/totp/enroll", headers=json_ct)).json()["secret"]
        confirmed = await c.post("/api/auth/totp/confirm", json={"code": pyotp.TOTP(secret).now()})
        assert confirmed.status_code == 200, confirmed.text
        assert (await c.post("/api/auth/totp/disable", headers=json_ct)).status_code == 200
    assert outbox == [
        (user_id, "An authenticator app was added to your account (DocsTest)."),
        (user_id, "An authenticator app was removed from your account (DocsTest)."),
    ]
