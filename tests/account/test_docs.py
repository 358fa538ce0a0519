"""docs/accounts.md: its Python block runs, and the app it builds serves the account flows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "accounts.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_accounts_page_has_a_python_example() -> None:
    assert len(BLOCKS) == 1


async def test_the_accounts_example_runs_and_records_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/docs.db")
    namespace: dict[str, Any] = {"__name__": "accounts_doc"}
    exec(compile(BLOCKS[0], str(DOC), "exec"), namespace)
    app = namespace["app"]
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            guest = await client.post(
                "/api/auth/signin", json={"provider": "anonymous", "params": {}}
            )
            assert guest.json()["signedIn"] is True
            signed = await client.post(
                "/api/auth/signin",
                json={
                    "provider": "password",
                    "params": {
                        "flow": "signUp",
                        "email": "docs@example.com",
                        "password": "docs password 123",
                    },
                },
            )
            assert signed.json()["userId"] == guest.json()["userId"]
            deleted = await client.post("/api/auth/account/delete", json={})
            assert deleted.json() == {"deleted": True}
        kinds = [e.kind for e in namespace["audit_log"]]
        assert kinds == ["sign_in", "anonymous_upgraded", "sign_in", "account_deleted"]
    finally:
        await app.auth.close()
