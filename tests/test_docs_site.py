"""The docs site builds with ``mkdocs build --strict`` (no broken link, no page left out of the
nav, no docstring mkdocstrings cannot read), and its API reference shows every public name."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import authbridge

ROOT = Path(__file__).resolve().parent.parent
MKDOCS_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        reason = "mkdocs is not installed (the `docs` extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=MKDOCS_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def test_the_api_reference_documents_every_public_name(site: Path) -> None:
    page = (site / "reference" / "authbridge" / "index.html").read_text(encoding="utf-8")
    documented = set(re.findall(r'id="authbridge\.(\w+)"', page))
    public = {name for name in authbridge.__all__ if not name.startswith("__")}
    assert public - documented == set()


def test_the_diagrams_are_rendered_as_mermaid(site: Path) -> None:
    for page in ("concepts/sessions", "concepts/tabs", "concepts/ssr"):
        html = (site / page / "index.html").read_text(encoding="utf-8")
        assert '<pre class="mermaid">' in html, page
