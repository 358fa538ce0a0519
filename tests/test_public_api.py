"""The public surface: the names DESIGN §15 promises, exported once, sorted and documented."""

from __future__ import annotations

import inspect

import authbridge
from authbridge import ssr

CONTRACT = {
    "Auth",
    "AuthConfig",
    "AuthMiddleware",
    "get_auth_session",
    "get_auth_session_id",
    "get_auth_user",
    "get_auth_user_id",
}


def test_the_contract_names_are_exported() -> None:
    assert set(authbridge.__all__) >= CONTRACT
    for name in CONTRACT:
        assert getattr(authbridge, name) is not None


def test_all_is_sorted_unique_and_complete() -> None:
    names = authbridge.__all__
    assert list(names) == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(authbridge, name), name


def test_every_public_name_is_documented() -> None:
    for module in (authbridge, ssr):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert inspect.getdoc(obj), f"{module.__name__}.{name} has no docstring"


def test_the_version_is_a_string() -> None:
    assert isinstance(authbridge.__version__, str) and authbridge.__version__.count(".") == 2


def test_the_ssr_helpers_of_design_section_10_exist() -> None:
    for name in (
        "install",
        "context",
        "auth_token",
        "is_authenticated",
        "route_matcher",
        "redirect",
        "http_client",
    ):
        assert callable(getattr(ssr, name)), name


def test_the_framework_modules_document_every_public_name() -> None:
    import importlib

    for name in ("fastapi", "litestar", "django", "testing", "pages"):
        module = importlib.import_module(f"authbridge.{name}")
        assert len(set(module.__all__)) == len(module.__all__), name
        for public in module.__all__:
            obj = getattr(module, public)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert inspect.getdoc(obj), f"authbridge.{name}.{public} has no docstring"
