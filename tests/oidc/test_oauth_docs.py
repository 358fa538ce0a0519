"""Every ```python block of docs/oauth.md runs; the app it builds sends GitHub sign-ins to
GitHub."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "oauth.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_oauth_page_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
async def test_oauth_doc_python_block_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/doc.db")
    namespace: dict[str, Any] = {"__name__": f"oauth_doc_block_{index}"}
    exec(compile(BLOCKS[index], f"docs/oauth.md block {index}", "exec"), namespace)
    app = namespace.get("app")
    if app is not None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            start = await client.post("/api/auth/signin", json={"provider": "github", "params": {}})
            assert start.status_code == 200, start.text
            assert start.json()["redirect"].startswith("https://github.com/login/oauth/authorize?")
        await namespace["auth"].close()
    if "github_repositories" in namespace:
        assert callable(namespace["github_repositories"])
