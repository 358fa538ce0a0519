"""``authbridge.django.AuthenticationMiddleware`` on requests that did not pass through
``AuthMiddleware`` (Django's ``RequestFactory`` and test clients): the access token is verified
with the engine ``settings.AUTHBRIDGE_AUTH`` names, a setup mistake is ImproperlyConfigured
naming the fix, and ``request.user`` answers Django's user contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authbridge import Auth

from .framework_apps import django as configure_django

ENGINE: Any = None
"""``settings.AUTHBRIDGE_AUTH`` points here."""
PASSWORD = "correct horse battery staple"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """Only access tokens are checked here: SQLite only."""
    return f"sqlite+aiosqlite:///{tmp_path}/auth.db"


@pytest.fixture
def engine_setting() -> Iterator[None]:
    from django.test.utils import override_settings

    configure_django()
    with override_settings(AUTHBRIDGE_AUTH=f"{__name__}.ENGINE"):
        yield
    global ENGINE
    ENGINE = None


def _through_middleware(**headers: str) -> Any:
    """The request as the view sees it after authbridge's Django middleware."""
    from django.http import HttpRequest
    from django.test import RequestFactory

    from authbridge.django import AuthenticationMiddleware

    seen: list[HttpRequest] = []

    def view(request: HttpRequest) -> Any:
        seen.append(request)
        return "response"

    request = RequestFactory().get("/anything", **headers)
    assert AuthenticationMiddleware(view)(request) == "response"
    return seen[0]


def test_without_the_asgi_middleware_or_the_setting_the_fix_is_named() -> None:
    from django.core.exceptions import ImproperlyConfigured

    configure_django()
    with pytest.raises(ImproperlyConfigured, match=r"settings\.AUTHBRIDGE_AUTH"):
        _through_middleware()


async def test_an_engine_that_is_not_open_is_named(auth: Auth, engine_setting: None) -> None:
    from django.core.exceptions import ImproperlyConfigured

    global ENGINE
    ENGINE = Auth(auth.config)  # configured, never opened
    token = (await auth.sign_up_with_password("dj@example.com", PASSWORD)).tokens.access.token
    with pytest.raises(ImproperlyConfigured, match=r"ENGINE is not open"):
        _through_middleware(HTTP_AUTHORIZATION=f"Bearer {token}")
    # Without a token there is nothing to verify: anonymous, no engine needed.
    assert _through_middleware().user.is_anonymous


async def test_request_user_follows_the_token(auth: Auth, engine_setting: None) -> None:
    global ENGINE
    ENGINE = auth
    anonymous = _through_middleware().user
    assert (anonymous.is_authenticated, anonymous.is_anonymous, anonymous.is_active) == (
        False,
        True,
        False,
    )
    assert (anonymous.pk, anonymous.id, anonymous.session_id) == (None, None, None)
    assert (anonymous.get_username(), str(anonymous)) == ("", "AnonymousUser")

    signed = await auth.sign_up_with_password("dj2@example.com", PASSWORD)
    token = signed.tokens.access.token
    request = _through_middleware(HTTP_AUTHORIZATION=f"Bearer {token}")
    user = request.user
    assert (user.is_authenticated, user.is_anonymous, user.is_active) == (True, False, True)
    assert (user.pk, user.id, user.session_id) == (
        signed.user_id,
        signed.user_id,
        signed.session_id,
    )
    assert user.get_username() == str(user) == signed.user_id
    assert repr(user) == f"AuthbridgeUser({signed.user_id!r})"
    # Permissions stay Django's business: authbridge grants none.
    assert not user.has_perm("notes.delete_note")
    assert not user.has_perms(["notes.view_note"])
    assert not user.has_module_perms("notes")
    assert request.auth.source == "bearer"

    from_cookie = _through_middleware(HTTP_COOKIE=f"authbridge.jwt={token}")
    assert (from_cookie.user.pk, from_cookie.auth.source) == (signed.user_id, "cookie")


async def test_a_bad_token_is_anonymous_with_the_reason(auth: Auth, engine_setting: None) -> None:
    global ENGINE
    ENGINE = auth
    request = _through_middleware(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert request.user.is_anonymous
    assert (request.auth.error, request.auth.source) == ("malformed", "bearer")
