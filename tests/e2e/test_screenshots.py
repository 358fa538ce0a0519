"""The docs' screenshots of the demo cannot go stale silently: replaying the screenshot script's
scenario must give the same page skeletons its manifest recorded, the stylesheet must be the one
it was taken with, and every image must be the one the manifest names.

After changing the demo's templates or stylesheet, re-run ``python -m tests.e2e.screenshots``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .screenshots import IMAGES, MANIFEST, SHOTS, STYLESHEET, file_hash, structures

RERUN = "the demo changed since the screenshots were taken: run `python -m tests.e2e.screenshots`"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return loaded


def test_every_shot_has_its_image_and_no_image_is_orphaned(manifest: dict[str, Any]) -> None:
    shots = manifest["shots"]
    assert set(shots) == set(SHOTS)
    for key, entry in shots.items():
        assert entry["image"] == SHOTS[key].name
        assert file_hash(IMAGES / entry["image"]) == entry["image_sha256"], entry["image"]
    on_disk = {p.name for p in IMAGES.glob("demo-*.png")}
    assert on_disk == {entry["image"] for entry in shots.values()}


def test_screenshots_were_taken_with_the_current_stylesheet(manifest: dict[str, Any]) -> None:
    assert file_hash(STYLESHEET) == manifest["stylesheet_sha256"], RERUN


def test_the_docs_show_every_screenshot(manifest: dict[str, Any]) -> None:
    docs = "".join(p.read_text(encoding="utf-8") for p in Path(IMAGES.parent).rglob("*.md"))
    for entry in manifest["shots"].values():
        assert f"images/{entry['image']}" in docs, entry["image"]


def test_pages_still_have_the_structure_the_screenshots_show(
    browser: Any, manifest: dict[str, Any]
) -> None:
    now = structures(browser)
    for key, entry in manifest["shots"].items():
        assert now[key]["path"] == entry["path"], key
        assert now[key]["structure_sha256"] == entry["structure_sha256"], f"{key}: {RERUN}"
