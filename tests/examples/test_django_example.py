"""``examples/django_site`` through a real uvicorn (its own process: Django's settings are
per process): ``request.user`` in templates, ``login_required`` on a sync view, an async view
reading the user row, the built-in sign-in page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.toolkit.databases import sqlite_url
from tests.toolkit.engines import PASSWORD
from tests.toolkit.servers import run_uvicorn

from .example_helpers import parse


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("django")
    env = {"AUTHBRIDGE_DATABASE_URL": sqlite_url(tmp, "django")}
    with run_uvicorn("examples.django_site.asgi:application", tmp / "log.txt", env) as server:
        yield server.url


def test_signed_out_pages_and_views(site: str) -> None:
    with httpx.Client(base_url=site) as client:
        home = parse(client.get("/").text)
        assert home.find_all("body")[0].attrs["data-auth-state"] == "signed-out"
        dashboard = client.get("/dashboard")
        assert (dashboard.status_code, dashboard.headers["location"]) == (
            302,
            "/signin?next=/dashboard",
        )
        assert client.get("/api/me").status_code == 401
        sign_in_page = parse(client.get("/signin?next=/dashboard").text)
        assert sign_in_page.get("signin-form").fields()["redirectTo"] == "/dashboard"


def test_signing_in_with_the_built_in_form_reaches_the_protected_sync_view(
    site: str, tmp_path: Path
) -> None:
    with httpx.Client(base_url=site) as client:
        signed_up = client.post(
            "/api/auth/signin",
            data={
                "provider": "password",
                "flow": "signUp",
                "email": "django@example.com",
                "password": PASSWORD,
                "redirectTo": "/dashboard",
            },
            headers={"origin": site, "referer": site + "/signin?next=/dashboard"},
        )
        assert (signed_up.status_code, signed_up.headers["location"]) == (303, "/dashboard")
        dashboard = client.get("/dashboard").json()
        me = client.get("/api/me").json()
        assert dashboard["userId"] == me["userId"]
        assert me["email"] == "django@example.com"
        home = parse(client.get("/").text)
        assert home.find_all("body")[0].attrs["data-auth-state"] == "signed-in"
        assert me["userId"] in home.get("who").text()
