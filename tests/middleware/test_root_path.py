"""Apps served under a path prefix: behind a path-stripping proxy (uvicorn ``--root-path``),
inside a Starlette ``Mount`` and as a FastAPI sub-application.

``protect=``, the auth endpoints and the sign-in page are matched on the path relative to
``root_path`` (as the framework routes it), and the prefix is put back into every URL the
browser sees: redirect locations, ``next=``, the bootstrap's endpoint prefix and script URL.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi import Request as FastAPIRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from authbridge import Auth, AuthMiddleware
from authbridge.routing import Pattern
from authbridge.ssr import auth_bootstrap, bootstrap_state
from tests.toolkit.clients import ClientFactory
from tests.toolkit.engines import PASSWORD
from tests.toolkit.servers import serve

from .conftest import FORM_CT, describe, starlette_app

HTML = {"accept": "text/html"}
API = {"accept": "application/json"}
PROTECT: list[Pattern] = ["/private", "/private/**"]


async def sign_up_at(client: httpx.AsyncClient, prefix: str) -> None:
    response = await client.post(
        f"{prefix}/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": "ada@example.com", "password": PASSWORD},
        },
    )
    assert response.status_code == 200, response.text


def mounted(auth: Auth, **kwargs: object) -> Starlette:
    inner = AuthMiddleware(starlette_app(), auth, protect=PROTECT, **kwargs)  # type: ignore[arg-type]
    return Starlette(routes=[Mount("/sub", app=inner)])


@pytest.fixture
def mounted_client(auth: Auth, client_factory: ClientFactory) -> httpx.AsyncClient:
    return client_factory(mounted(auth))


# -- behind a proxy that strips the prefix (uvicorn --root-path) -----------------------------------


async def test_protect_applies_under_uvicorn_root_path(auth: Auth) -> None:
    app = AuthMiddleware(starlette_app(), auth, protect=PROTECT)
    async with (
        serve(app, lifespan="auto", root_path="/app") as base,
        httpx.AsyncClient(base_url=base) as client,
    ):
        assert (await client.get("/private", headers=API)).status_code == 401
        assert (await client.get("/private/notes", headers=API)).status_code == 401
        page = await client.get("/private?x=1", headers=HTML)
        assert page.status_code == 303
        assert page.headers["location"] == "/app/signin?next=%2Fapp%2Fprivate%3Fx%3D1"
        assert (await client.get("/public", headers=API)).status_code == 200

        await sign_up_at(client, "")
        seen = await client.get("/private", headers=API)
        assert seen.status_code == 200 and seen.json()["authenticated"] is True


# -- a Starlette Mount -----------------------------------------------------------------------------


async def test_protect_applies_inside_a_starlette_mount(mounted_client: httpx.AsyncClient) -> None:
    assert (await mounted_client.get("/sub/private", headers=API)).status_code == 401
    assert (await mounted_client.get("/sub/private/x", headers=API)).status_code == 401
    assert (await mounted_client.get("/sub/public", headers=API)).status_code == 200


async def test_the_sign_in_redirect_keeps_the_mount_prefix(
    mounted_client: httpx.AsyncClient,
) -> None:
    response = await mounted_client.get("/sub/private/7?sort=new", headers=HTML)
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/sub/signin"
    assert parse_qs(location.query) == {"next": ["/sub/private/7?sort=new"]}


async def test_the_sign_in_page_is_never_protected_under_a_mount(
    auth: Auth, client_factory: ClientFactory
) -> None:
    inner = AuthMiddleware(starlette_app(), auth, protect="/**")
    client = client_factory(Starlette(routes=[Mount("/sub", app=inner)]))
    assert (await client.get("/sub/signin", headers=HTML)).status_code == 200
    assert (await client.get("/sub/other", headers=HTML)).status_code == 303


async def test_the_auth_endpoints_work_under_a_mount(mounted_client: httpx.AsyncClient) -> None:
    await sign_up_at(mounted_client, "/sub")
    seen = await mounted_client.get("/sub/private", headers=API)
    assert seen.status_code == 200 and seen.json()["authenticated"] is True
    token = await mounted_client.post("/sub/api/auth/token")
    assert token.status_code == 200 and token.json()["token"]
    script = await mounted_client.get("/sub/api/auth/client.js")
    assert script.status_code == 200 and "window.authbridge" in script.text
    jwks = await mounted_client.get("/sub/.well-known/jwks.json")
    assert jwks.status_code == 200 and jwks.json()["keys"]
    out = await mounted_client.post("/sub/api/auth/signout")
    assert out.status_code == 200 and out.json() == {"signedOut": True}
    assert (await mounted_client.get("/sub/private", headers=API)).status_code == 401


async def test_form_redirects_stay_under_the_mount(mounted_client: httpx.AsyncClient) -> None:
    fields = {"flow": "signUp", "email": "ada@example.com", "password": PASSWORD}
    signed_in = await mounted_client.post("/sub/api/auth/signin", data=fields, headers=FORM_CT)
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/sub/")
    failed = await mounted_client.post(
        "/sub/api/auth/signin", data={**fields, "flow": "signIn", "password": "x"}, headers=FORM_CT
    )
    assert failed.status_code == 303
    location = urlsplit(failed.headers["location"])
    assert location.path == "/sub/signin" and "error" in parse_qs(location.query)


async def test_the_bootstrap_names_the_endpoints_under_the_mount(
    auth: Auth, client_factory: ClientFactory
) -> None:
    async def page(request: Request) -> Response:
        return JSONResponse({"state": bootstrap_state(request), "html": auth_bootstrap(request)})

    inner = AuthMiddleware(Starlette(routes=[Route("/page", page)]), auth)
    client = client_factory(Starlette(routes=[Mount("/sub", app=inner)]))
    body = (await client.get("/sub/page")).json()
    assert body["state"]["prefix"] == "/sub/api/auth"
    assert 'src="/sub/api/auth/client.js?v=' in body["html"]


# -- FastAPI sub-applications ----------------------------------------------------------------------


def fastapi_with_sub_app(auth: Auth) -> FastAPI:
    sub = FastAPI()

    @sub.get("/private")
    async def private(request: FastAPIRequest) -> dict[str, object]:
        return describe(request)

    @sub.get("/public")
    async def public(request: FastAPIRequest) -> dict[str, object]:
        return describe(request)

    sub.add_middleware(AuthMiddleware, auth=auth, protect=PROTECT)
    main = FastAPI()
    main.mount("/v1", sub)
    return main


async def test_protect_applies_inside_a_fastapi_sub_application(
    auth: Auth, client_factory: ClientFactory
) -> None:
    client = client_factory(fastapi_with_sub_app(auth))
    assert (await client.get("/v1/private", headers=API)).status_code == 401
    redirect = await client.get("/v1/private", headers=HTML)
    assert redirect.headers["location"] == "/v1/signin?next=%2Fv1%2Fprivate"
    assert (await client.get("/v1/public", headers=API)).json()["authenticated"] is False
    await sign_up_at(client, "/v1")
    seen = await client.get("/v1/private", headers=API)
    assert seen.status_code == 200 and seen.json()["authenticated"] is True


async def test_a_root_path_the_path_does_not_carry_is_put_back_into_the_sign_in_redirect(
    auth: Auth, client_factory: ClientFactory
) -> None:
    # A server told of a prefix that the proxy stripped, and that does not add it to the path
    # (FastAPI's root_path option did this): paths arrive without it; the browser needs it.
    app = FastAPI()

    @app.get("/private")
    async def private(request: FastAPIRequest) -> dict[str, object]:
        return describe(request)

    app.add_middleware(AuthMiddleware, auth=auth, protect=PROTECT)
    transport = httpx.ASGITransport(app=app, root_path="/app")
    client = client_factory(app, transport=transport)
    assert (await client.get("/private", headers=API)).status_code == 401
    redirect = await client.get("/private", headers=HTML)
    assert redirect.headers["location"] == "/app/signin?next=%2Fapp%2Fprivate"
