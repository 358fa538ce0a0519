"""The README's "Testing your app" block passes against the README's FastAPI quick start."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_readme_fastapi_quick_start_passes_its_testing_kit_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run with Starlette's TestClient on its default http://testserver and no create_tables
    flag (a new SQLite file gets its tables)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/kit.db")
    (quick_start,) = [b for b in BLOCKS if "authbridge.fastapi import" in b]
    (kit_test,) = [b for b in BLOCKS if "authbridge.testing import" in b]
    namespace: dict[str, Any] = {"__name__": "readme_fastapi"}
    exec(compile(quick_start, "README FastAPI quick start", "exec"), namespace)
    exec(compile(kit_test, "README testing block", "exec"), namespace)
    namespace["test_me_shows_the_signed_in_user"]()
