"""The README fits on a few screens and every link in it leads somewhere: the long-form material
lives in docs/ (and bench/README.md), which the README links to."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
MAX_LINES = 200


def test_the_readme_is_at_most_about_two_hundred_lines() -> None:
    assert len(TEXT.splitlines()) <= MAX_LINES


def test_the_readme_has_the_sections_a_newcomer_looks_for() -> None:
    headings = re.findall(r"^## (.+)$", TEXT, re.M)
    for wanted in ("Install", "Two commands", "Quick start", "Configuration", "Documentation"):
        assert wanted in headings, wanted
    assert any(h.startswith("Supported") for h in headings)
    # The shortest example comes before anything else.
    assert TEXT.index("```python") < TEXT.index("\n## ")


def test_every_relative_link_and_image_in_the_readme_exists() -> None:
    targets = re.findall(r"\]\((?!https?://|#)([^)#\s]+)", TEXT)
    assert targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert missing == []
