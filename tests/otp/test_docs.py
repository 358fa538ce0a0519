"""Every ```python block of docs/email.md runs."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "email.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_email_guide_has_a_python_example() -> None:
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
async def test_email_guide_python_block_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("SMTP_URL", "EMAIL_VERIFICATION", "EMAIL_CONSOLE"):
        monkeypatch.delenv(f"AUTHBRIDGE_{name}", raising=False)
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/doc.db")
    namespace: dict[str, Any] = {"__name__": f"email_doc_block_{index}"}
    code = compile(BLOCKS[index], f"docs/email.md block {index}", "exec")
    await asyncio.to_thread(exec, code, namespace)
