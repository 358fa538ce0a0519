"""Every ```python block of the README and of the docs site (``docs/**/*.md``) runs, and the apps
it builds answer requests.

Each block runs on its own, in a fresh directory whose ``AUTHBRIDGE_DATABASE_URL`` points at a
throwaway SQLite file. The page's ```html blocks that start with ``{# templates/NAME #}`` are
written to ``templates/NAME`` first, so a page's Python and its templates are tested together.

A block that is a fragment (it needs your app's objects) may opt out only with a marker that
readers see too, a title on the fence naming the reason::

    ```python title="Fragment (not run: uses your app's models)"

Such blocks are reported as skipped with that reason (``pytest -rs`` lists them).
"""

from __future__ import annotations

import asyncio
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from authbridge import Auth, AuthMiddleware
from tests.toolkit.clients import asgi_client
from tests.toolkit.databases import sqlite_url

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python(?P<info>[^\n]*)\n(?P<code>.*?)^```", re.S | re.M)
TEMPLATE = re.compile(r"^```html\n\{# templates/(\S+) #\}\n(.*?)^```", re.S | re.M)
SKIP = re.compile(r'title="Fragment \(not run: (?P<reason>[^)"]+)\)"')
SIGN_UP = {
    "provider": "password",
    "params": {"flow": "signUp", "email": "reader@example.com", "password": "readme-password"},
}


@dataclass(frozen=True, slots=True)
class Block:
    """One ```python block: where it is, its code, and why it is not run (if it is not)."""

    page: Path
    line: int
    code: str
    skip_reason: str | None

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The ```python blocks of one Markdown page."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        reason = SKIP.search(match["info"])
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(page, line, match["code"], reason["reason"] if reason else None))
    return found


BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def test_readme_and_docs_have_python_examples() -> None:
    assert len(blocks_of(ROOT / "README.md")) >= 2
    assert len(BLOCKS) >= 20


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_are_fenced_so_this_suite_finds_them(page: Path) -> None:
    """A ```py or ```python3 fence would escape this suite; a bare "not run" must say why."""
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"^```(py|python3|py3)\s*$", text, re.M), page
    for match in FENCE.finditer(text):
        if "not run" in match["info"]:
            assert SKIP.search(match["info"]), f"{page}: a skip marker needs a reason"


PROTECTS_WHOAMI = re.compile(
    r'protect=\[[^\]]*"/whoami"|guards=\[requires_auth\]|Depends\(current_user|@requires\('
)
"""How the documented apps protect their ``/whoami`` route (protect rules, a Litestar guard, a
FastAPI dependency, Starlette's ``@requires``): anonymous callers then get a 401."""


async def _exercise_app(app: Any, protected: bool) -> None:
    """Sign up through the block's app; its ``/whoami`` (if it has one) must show nobody before
    (a 401 where the block protects the route) and the new user after."""
    async with asgi_client(app, "http://localhost") as client:
        anonymous = await client.get("/whoami")
        signed_up = await client.post("/api/auth/signin", json=SIGN_UP)
        assert signed_up.status_code == 200, signed_up.text
        me = await client.get("/whoami")
    if me.status_code == 404:  # the block serves no /whoami: nothing more to check
        assert anonymous.status_code == 404, anonymous.text
        return
    assert me.status_code == 200, me.text
    assert me.json()["userId"] == signed_up.json()["userId"]
    if protected:
        assert anonymous.status_code == 401, anonymous.text
    else:
        assert (anonymous.status_code, anonymous.json()["userId"]) == (200, None)


async def _exercise_profile(profile: Any) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from authbridge import AuthConfig

    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse(await profile(request))

    auth = Auth(AuthConfig.from_env(), create_tables=True)
    app = AuthMiddleware(Starlette(routes=[Route("/whoami", endpoint)]), auth)
    try:
        async with asgi_client(app, "http://localhost") as client:
            await client.post("/api/auth/signin", json=SIGN_UP)
            body = (await client.get("/whoami")).json()
            assert body["email"] == "reader@example.com"
            assert body["sessionId"] and body["lastActive"]
    finally:
        await auth.close()


def _engines_in(namespace: dict[str, Any]) -> list[Auth]:
    """Every ``Auth`` the block built, directly or behind an ``AuthMiddleware``."""
    found: list[Auth] = []
    for value in namespace.values():
        if isinstance(value, AuthMiddleware):
            value = value.auth
        if isinstance(value, Auth) and value not in found:
            found.append(value)
    return found


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
async def test_python_block_runs(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if block.skip_reason is not None:
        pytest.skip(f"{block.name} is marked as a fragment: {block.skip_reason}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", sqlite_url(tmp_path, "docs"))
    for name, template in TEMPLATE.findall(block.page.read_text(encoding="utf-8")):
        (tmp_path / "templates").mkdir(exist_ok=True)
        (tmp_path / "templates" / name).write_text(template, encoding="utf-8")
    # A real module, as `uvicorn module:app` would import: frameworks that resolve annotations
    # through sys.modules (Litestar) need it.
    module = types.ModuleType(f"docs_block_{block.page.stem.replace('-', '_')}_{block.line}")
    namespace: dict[str, Any] = module.__dict__
    code = compile(block.code, block.name, "exec")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    if "django" in block.code:
        from tests.middleware.framework_apps import django

        django()  # settings for the block's get_asgi_application() (configured once per process)
    if "asyncio.run(" in block.code:
        # The block runs its own event loop; give it a thread of its own.
        await asyncio.to_thread(exec, code, namespace)
    else:
        exec(code, namespace)
    try:
        app = namespace.get("app", namespace.get("application"))  # Django calls it application
        if app is not None:
            await _exercise_app(app, protected=bool(PROTECTS_WHOAMI.search(block.code)))
        if "profile" in namespace:
            await _exercise_profile(namespace["profile"])
    finally:
        for auth in _engines_in(namespace):
            await auth.close()
