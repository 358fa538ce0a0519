"""The testing kit (``authbridge.testing``) with every test client it promises to work with."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from litestar import Litestar, get
from litestar.testing import TestClient as LitestarTestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authbridge import Auth, AuthMiddleware, get_auth_state
from authbridge.fastapi import CurrentUser
from authbridge.litestar import AuthPlugin, AuthRequest, requires_auth
from authbridge.testing import AuthTestKit, FixedClock

PASSWORD = "correct horse battery staple"


async def whoami(request: Request) -> JSONResponse:
    state = get_auth_state(request)
    return JSONResponse({"userId": state.user_id, "source": state.source})


def starlette_app(auth: Auth) -> AuthMiddleware:
    return AuthMiddleware(Starlette(routes=[Route("/whoami", whoami)]), auth)


def fastapi_app(auth: Auth) -> FastAPI:
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        return {"userId": user.id, "email": user.email}

    return app


# -- httpx.AsyncClient -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url", ["http://testserver", "https://testserver", "http://localhost"]
)
@pytest.mark.parametrize("via", ["cookie", "bearer"])
async def test_an_async_client_is_signed_in_by_cookie_or_bearer(
    authbridge_auth: Auth, authbridge_kit: AuthTestKit, base_url: str, via: str
) -> None:
    app = starlette_app(authbridge_auth)
    user = await authbridge_kit.create_user("ada@example.com")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as c:
        assert (await c.get("/whoami")).json()["userId"] is None
        await authbridge_kit.sign_in(c, user, via=via)  # type: ignore[arg-type]
        assert (await c.get("/whoami")).json() == {"userId": user.id, "source": via}
    await authbridge_auth.close()


async def test_creating_a_user_pays_no_hashing_unless_a_password_is_given(
    authbridge_auth: Auth, authbridge_kit: AuthTestKit
) -> None:
    hashed: list[str] = []
    real_hash = authbridge_auth.passwords.hash

    async def counting_hash(password: str) -> str:
        hashed.append(password)
        return await real_hash(password)

    authbridge_auth.passwords.hash = counting_hash  # type: ignore[method-assign]
    plain = await authbridge_kit.create_user("plain@example.com", name="Plain")
    assert (plain.email, plain.name, hashed) == ("plain@example.com", "Plain", [])
    await authbridge_kit.create_user("pw@example.com", password=PASSWORD)
    assert hashed == [PASSWORD]
    signed_in = await authbridge_auth.sign_in(
        "password", {"flow": "signIn", "email": "pw@example.com", "password": PASSWORD}
    )
    assert signed_in.user_id
    await authbridge_auth.close()


async def test_the_fixed_clock_drives_expiry_and_refresh(
    authbridge_auth: Auth, authbridge_kit: AuthTestKit, authbridge_clock: FixedClock
) -> None:
    app = starlette_app(authbridge_auth)
    user = await authbridge_kit.create_user()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        tokens = await authbridge_kit.sign_in(c, user)
        authbridge_clock.advance(3600)
        assert (await c.get("/whoami")).json()["userId"] == user.id  # refreshed by cookie
        assert c.cookies.get("authbridge.jwt") != tokens.access.token
    await authbridge_auth.close()


# -- Starlette / FastAPI TestClient ----------------------------------------------------------------


def test_signing_up_through_a_default_test_client_keeps_the_session(authbridge_auth: Auth) -> None:
    """TestClient's default base URL is http://testserver: cookies must survive it."""
    with TestClient(starlette_app(authbridge_auth)) as client:
        assert str(client.base_url) == "http://testserver"
        body = client.post(
            "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": "signUp", "email": "tc@example.com", "password": PASSWORD},
            },
        ).json()
        assert client.get("/whoami").json() == {"userId": body["userId"], "source": "cookie"}


@pytest.mark.parametrize("via", ["cookie", "bearer"])
def test_a_fastapi_test_client_is_signed_in_without_a_password(
    authbridge_auth: Auth, authbridge_kit: AuthTestKit, via: str
) -> None:
    with TestClient(fastapi_app(authbridge_auth)) as client:
        assert client.get("/me").status_code == 401
        user = authbridge_kit.create_user_sync(client, "fa@example.com")
        authbridge_kit.sign_in_sync(client, user, via=via)  # type: ignore[arg-type]
        assert client.get("/me").json() == {"userId": user.id, "email": "fa@example.com"}


# -- Litestar --------------------------------------------------------------------------------------


def test_a_litestar_test_client_is_signed_in(
    authbridge_auth: Auth, authbridge_kit: AuthTestKit
) -> None:
    @get("/me", guards=[requires_auth])
    async def me(request: AuthRequest) -> dict[str, Any]:
        return {"userId": request.user.user_id, "source": request.auth.source}

    app = Litestar([me], plugins=[AuthPlugin(authbridge_auth)])
    with LitestarTestClient(app) as client:
        assert client.get("/me").status_code == 401
        user = authbridge_kit.create_user_sync(client, "ls@example.com")
        authbridge_kit.sign_in_sync(client, user)
        assert client.get("/me").json() == {"userId": user.id, "source": "cookie"}


# -- Django ----------------------------------------------------------------------------------------

ENGINE: Auth | None = None
"""``settings.AUTHBRIDGE_AUTH`` points here for Django's test clients."""


@pytest.mark.parametrize("via", ["cookie", "bearer"])
async def test_a_django_async_test_client_is_signed_in(
    authbridge_auth: Auth, authbridge_kit: AuthTestKit, via: str
) -> None:
    from django.test import AsyncClient
    from django.test.utils import override_settings

    from tests.middleware.framework_apps import django

    global ENGINE
    django()
    ENGINE = authbridge_auth
    with override_settings(AUTHBRIDGE_AUTH=f"{__name__}.ENGINE"):
        client = AsyncClient()
        assert (await client.get("/whoami")).json()["userId"] is None
        user = await authbridge_kit.create_user("djasync@example.com")
        await authbridge_kit.sign_in(client, user, via=via)  # type: ignore[arg-type]
        seen = (await client.get("/whoami")).json()
        assert (seen["userId"], seen["source"], seen["frameworkUser"]) == (user.id, via, True)
    ENGINE = None
    await authbridge_auth.close()


@pytest.mark.parametrize("via", ["cookie", "bearer"])
def test_a_django_test_client_is_signed_in(
    authbridge_auth: Auth, authbridge_kit: AuthTestKit, via: str
) -> None:
    from django.test import Client
    from django.test.utils import override_settings

    from tests.middleware.framework_apps import django

    global ENGINE
    django()  # settings + the probe URLs (async /whoami, login_required sync /private)
    ENGINE = authbridge_auth
    with override_settings(AUTHBRIDGE_AUTH=f"{__name__}.ENGINE"):
        client = Client()
        assert client.get("/private").status_code == 302
        user = authbridge_kit.create_user_sync(client, "dj@example.com")
        authbridge_kit.sign_in_sync(client, user, via=via)  # type: ignore[arg-type]
        seen = client.get("/whoami").json()
        assert (seen["userId"], seen["source"], seen["frameworkUser"]) == (user.id, via, True)
        assert client.get("/private").json()["sync"] is True
    ENGINE = None


async def test_a_bare_define_middleware_in_litestar_is_reported_not_silent(
    authbridge_auth: Auth,
) -> None:
    import logging

    from litestar.middleware import DefineMiddleware

    @get("/x")
    async def x() -> str:
        return "x"

    errors: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: errors.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("authbridge.middleware")
    logger.addHandler(handler)  # Litestar reconfigures logging, so not caplog
    try:
        app: Any = Litestar(
            [x], middleware=[DefineMiddleware(cast(Any, AuthMiddleware), auth=authbridge_auth)]
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            await c.get("/x")
    finally:
        logger.removeHandler(handler)
    assert any("AuthPlugin" in message for message in errors)
    await authbridge_auth.close()


@pytest.mark.parametrize("base_url", ["http://test", "http://api.test:8000", "http://testserver"])
async def test_test_hosts_over_plain_http_keep_their_session(
    authbridge_auth: Auth, base_url: str
) -> None:
    app = starlette_app(authbridge_auth)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as c:
        body = (
            await c.post(
                "/api/auth/signin",
                json={
                    "provider": "password",
                    "params": {"flow": "signUp", "email": "h@example.com", "password": PASSWORD},
                },
            )
        ).json()
        assert (await c.get("/whoami")).json()["userId"] == body["userId"]
    await authbridge_auth.close()


async def test_signing_in_over_plain_http_on_a_public_host_says_the_cookies_will_not_return(
    authbridge_auth: Auth, caplog: pytest.LogCaptureFixture
) -> None:
    app = starlette_app(authbridge_auth)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://example.com") as c:
        await c.post(
            "/api/auth/signin",
            json={
                "provider": "password",
                "params": {"flow": "signUp", "email": "p@example.com", "password": PASSWORD},
            },
        )
        assert (await c.get("/whoami")).json()["userId"] is None  # Secure cookies dropped
    assert any("will not send them back" in r.getMessage() for r in caplog.records)
    await authbridge_auth.close()
