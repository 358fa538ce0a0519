"""Screenshots of the notes demo for the docs, taken by driving Debian's Chromium.

Re-run after changing the demo's templates or stylesheet (from the repository root)::

    .venv/bin/python -m tests.e2e.screenshots

It serves the demo on a free port with a throwaway database, walks through the scenario below in
two browser profiles (a Chromium "laptop" and a Firefox-on-Windows "other device"), and writes
``docs/images/demo-*.png`` plus ``docs/images/screenshots.json``. The manifest records, for each
image, the page it shows, a hash of that page's DOM skeleton (tags, ids, classes, ``hidden``; no
text, no session ids), the image's own hash, and the stylesheet's hash.
``tests/e2e/test_screenshots.py`` replays the same scenario without taking pictures and fails when
any of those no longer match: the screenshots cannot go stale silently.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.toolkit.browser import launch_chromium
from tests.toolkit.servers import ROOT

from .conftest import run_server
from .pages import PASSWORD

IMAGES = ROOT / "docs" / "images"
MANIFEST = IMAGES / "screenshots.json"
STYLESHEET = ROOT / "examples" / "notes" / "static" / "notes.css"
EMAIL = "ada@example.com"
OTHER_DEVICE_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
DESKTOP = {"width": 1000, "height": 720}
PHONE = {"width": 360, "height": 740}
NOTES = [
    "Buy oat milk",
    "Rotate the signing key next Tuesday (authbridge keys generate --rotate)",
    "A link pasted without spaces wraps instead of widening the page: "
    "https://example.com/" + "a-very-long-path-segment/" * 8,
]

# The DOM skeleton: what the page is made of, without what varies between runs.
SKELETON_JS = """() => {
  const walk = (el) => {
    const id = el.id ? "#" + el.id : "";
    const classes = [...el.classList].sort().map((c) => "." + c).join("");
    const hidden = el.hidden ? "[hidden]" : "";
    const kids = [...el.children].filter((c) => c.tagName !== "SCRIPT");
    const inner = kids.length ? "(" + kids.map(walk).join(",") + ")" : "";
    return el.tagName.toLowerCase() + id + classes + hidden + inner;
  };
  return walk(document.body);
}"""


@dataclass(frozen=True, slots=True)
class Shot:
    """One picture: the file name, what it shows, and how it was framed."""

    name: str
    caption: str
    viewport: dict[str, int]
    color_scheme: str = "light"
    full_page: bool = True


SHOTS = {
    "signin-error": Shot(
        "demo-signin-error.png",
        "A failed sign-in: the error beside the form that failed, the email kept",
        DESKTOP,
    ),
    "notes": Shot("demo-notes.png", "Notes, and a stream read with the access token", DESKTOP),
    "notes-phone": Shot("demo-notes-phone.png", "The notes page at 360 px", PHONE),
    "sessions": Shot(
        "demo-sessions.png", "Your sessions: this device, and another one to sign out", DESKTOP
    ),
    "sessions-dark": Shot(
        "demo-sessions-dark.png", "The sessions page in dark mode", DESKTOP, "dark"
    ),
    "session-ended": Shot(
        "demo-session-ended.png",
        "The other device, after it was signed out from the sessions page",
        DESKTOP,
    ),
}

Capture = Callable[[str, Any], None]


def skeleton_hash(page: Any) -> str:
    """sha256 of the page's DOM skeleton."""
    return hashlib.sha256(page.evaluate(SKELETON_JS).encode()).hexdigest()


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def submit(page: Any, form: str, fields: dict[str, str]) -> None:
    for name, value in fields.items():
        page.fill(f"form#{form} [name={name}]", value)
    with page.expect_navigation():
        page.click(f"form#{form} [type=submit]")


def scenario(browser: Any, base: str, capture: Capture) -> None:
    """The walk through the demo; ``capture(key, page)`` is called where each shot is taken."""
    laptop = browser.new_context(viewport=DESKTOP, color_scheme="light")
    other = browser.new_context(viewport=DESKTOP, color_scheme="light", user_agent=OTHER_DEVICE_UA)
    try:
        page = laptop.new_page()
        page.goto(base + "/signin")
        submit(page, "signup-form", {"email": EMAIL, "password": PASSWORD})
        page.goto(base + "/notes")
        for text in NOTES:
            submit(page, "note-form", {"text": text})
        page.click("#stream-button")
        page.wait_for_selector("#stream-output[data-state=done]", timeout=10_000)
        capture("notes", page)

        phone = laptop.new_page()
        phone.set_viewport_size(PHONE)
        phone.goto(base + "/notes")
        capture("notes-phone", phone)
        phone.close()

        device = other.new_page()
        device.goto(base + "/signin")
        submit(device, "signin-form", {"email": EMAIL, "password": "not the password"})
        device.wait_for_selector("#auth-error")
        capture("signin-error", device)
        submit(device, "signin-form", {"email": EMAIL, "password": PASSWORD})

        page.goto(base + "/sessions")
        capture("sessions", page)
        page.emulate_media(color_scheme="dark")
        capture("sessions-dark", page)
        page.emulate_media(color_scheme="light")

        with page.expect_navigation():
            page.click("li.session[data-current=false] form.revoke-session [type=submit]")
        device.goto(base + "/")
        device.wait_for_selector("#session-ended:not([hidden])")
        capture("session-ended", device)
    finally:
        laptop.close()
        other.close()


def structures(browser: Any, *, shoot_into: Path | None = None) -> dict[str, Any]:
    """Serve the demo and run the scenario; return each shot's manifest entry (page path,
    skeleton hash, and, when ``shoot_into`` is given, the image written there and its hash)."""
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, run_server(Path(tmp), "shared") as server:

        def capture(key: str, page: Any) -> None:
            shot = SHOTS[key]
            page.wait_for_load_state("networkidle")
            entry: dict[str, Any] = {
                "path": page.url.removeprefix(server.url),
                "caption": shot.caption,
                "viewport": shot.viewport,
                "color_scheme": shot.color_scheme,
                "structure_sha256": skeleton_hash(page),
            }
            if shoot_into is not None:
                target = shoot_into / shot.name
                page.screenshot(path=str(target), full_page=shot.full_page, animations="disabled")
                entry["image"] = shot.name
                entry["image_sha256"] = file_hash(target)
            found[key] = entry

        scenario(browser, server.url, capture)
    return found


def main() -> None:
    """Take every screenshot and write the manifest."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    with launch_chromium() as browser:
        found = structures(browser, shoot_into=IMAGES)
    manifest = {
        "generated_by": "python -m tests.e2e.screenshots",
        "stylesheet_sha256": file_hash(STYLESHEET),
        "shots": found,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for entry in found.values():
        print(f"wrote docs/images/{entry['image']}  ({entry['path']})")


if __name__ == "__main__":
    main()
