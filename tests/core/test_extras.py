"""A missing optional dependency fails with the ``pip install 'authbridge[...]'`` to run."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import pytest

from authbridge import Auth, AuthConfig, ConfigError
from authbridge._extras import MissingExtra, require
from tests.toolkit.engines import signing_key


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make modules look uninstalled to ``require``."""

    def hide(*names: str) -> None:
        real = importlib.util.find_spec

        def find_spec(name: str, *args: Any) -> Any:
            return None if name in names else real(name, *args)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    return hide


def test_require_names_the_extra() -> None:
    with pytest.raises(MissingExtra) as caught:
        require("surely_not_installed_module", "postgres", "PostgreSQL")
    assert "pip install 'authbridge[postgres]'" in str(caught.value)
    assert isinstance(caught.value, ConfigError)


async def test_postgresql_without_asyncpg_names_the_postgres_extra(without: Any) -> None:
    without("asyncpg")
    config = AuthConfig(
        database_url="postgresql+asyncpg://u@127.0.0.1:1/x",
        jwt_private_keys=(signing_key(),),
    )
    auth = Auth(config)
    with pytest.raises(MissingExtra, match=r"authbridge\[postgres\]"):
        await auth.open()
    await auth.close()


def test_migrations_without_alembic_name_the_cli_extra(
    without: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    without("alembic")
    monkeypatch.delitem(sys.modules, "authbridge.migrations", raising=False)
    with pytest.raises(MissingExtra, match=r"authbridge\[cli\]"):
        importlib.import_module("authbridge.migrations")


def test_http_client_without_httpx_names_the_ssr_extra(without: Any) -> None:
    from authbridge import AuthState, ssr

    without("httpx")
    with pytest.raises(MissingExtra, match=r"authbridge\[ssr\]"):
        ssr.http_client({"type": "http", "auth": AuthState.anonymous()})


def test_the_core_install_imports_without_the_extras() -> None:
    """The public package and the middleware import none of asyncpg, alembic or httpx."""
    import subprocess

    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('asyncpg', 'alembic', 'httpx'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import authbridge, authbridge.middleware, authbridge.ssr, authbridge.pages\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


def test_trusted_issuers_without_httpx_name_the_trusted_extra(without: Any) -> None:
    from authbridge.jwks import JwksCache

    without("httpx")
    with pytest.raises(MissingExtra, match=r"authbridge\[trusted\]"):
        JwksCache(jwks_url="https://issuer.example/.well-known/jwks.json")
