"""Every ```python block of the README runs, and the apps it builds answer requests."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import httpx
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)

SIGN_UP = {
    "provider": "password",
    "params": {"flow": "signUp", "email": "reader@example.com", "password": "readme-password"},
}


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 5


async def _exercise_app(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        anonymous = await client.get("/whoami")
        assert anonymous.status_code in (200, 401, 404)
        signed_up = await client.post("/api/auth/signin", json=SIGN_UP)
        assert signed_up.status_code == 200, signed_up.text
        me = await client.get("/whoami")
        assert me.status_code in (200, 404)
        if me.status_code == 200 and "userId" in me.json():
            assert me.json()["userId"] == signed_up.json()["userId"]


async def _exercise_profile(profile: Any) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from authbridge import Auth, AuthConfig, AuthMiddleware

    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse(await profile(request))

    auth = Auth(AuthConfig.from_env(), create_tables=True)
    app = AuthMiddleware(Starlette(routes=[Route("/whoami", endpoint)]), auth)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            await client.post("/api/auth/signin", json=SIGN_UP)
            body = (await client.get("/whoami")).json()
            assert body["email"] == "reader@example.com"
            assert body["sessionId"] and body["lastActive"]
    finally:
        await auth.close()


@pytest.mark.parametrize("index", range(len(BLOCKS)))
async def test_readme_python_block_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/readme.db")
    source = BLOCKS[index]
    # A real module: frameworks (Litestar) resolve annotations through sys.modules.
    module = types.ModuleType(f"readme_block_{index}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__
    if "django" in source:
        from middleware.framework_apps import django

        django()  # settings for the block's get_asgi_application() (one per process)
    if "asyncio.run(" in source:
        # The block runs its own event loop; give it a thread of its own.
        import asyncio

        await asyncio.to_thread(exec, compile(source, f"README block {index}", "exec"), namespace)
    else:
        exec(compile(source, f"README block {index}", "exec"), namespace)
    if "app" in namespace:
        await _exercise_app(namespace["app"])
        engine = getattr(namespace["app"], "auth", None)
        if engine is not None:
            await engine.close()
    if "profile" in namespace:
        await _exercise_profile(namespace["profile"])
    auth = namespace.get("auth")
    if auth is not None and hasattr(auth, "close"):
        await auth.close()


def test_the_readme_fastapi_quick_start_passes_its_testing_kit_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "Testing your app" block, run against the FastAPI quick start it refers to, with
    Starlette's TestClient on its default http://testserver and no create_tables flag (a new
    SQLite file gets its tables)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/kit.db")
    (quick_start,) = [b for b in BLOCKS if "authbridge.fastapi import" in b]
    (kit_test,) = [b for b in BLOCKS if "authbridge.testing import" in b]
    namespace: dict[str, Any] = {"__name__": "readme_fastapi"}
    exec(compile(quick_start, "README FastAPI quick start", "exec"), namespace)
    exec(compile(kit_test, "README testing block", "exec"), namespace)
    namespace["test_me_shows_the_signed_in_user"]()
