"""The built-in sign-in page: served where the app has none, errors beside the failed form with
the email kept, overridable by the app's template, embeddable as macros, open to new methods."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import httpx
import jinja2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from authbridge import Auth, AuthMiddleware, PasswordProvider
from authbridge.pages import SignInPage, install
from tests.toolkit.clients import ClientFactory, sign_up
from tests.toolkit.engines import PASSWORD

from .conftest import FORM_CT, starlette_app


class Page(HTMLParser):
    """Forms, inputs, labels and alerts of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.labels: set[str] = set()
        self.alerts: list[tuple[str, str | None]] = []
        self._alert = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({**a, "inputs": {}})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"][a.get("name")] = a
        elif tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        elif a.get("role") == "alert":
            self.alerts.append((str(a.get("id")), a.get("data-code")))

    def form(self, form_id: str) -> Mapping[str, Any]:
        return next(f for f in self.forms if f.get("id") == form_id)


@pytest.fixture
def app(auth: Auth) -> AuthMiddleware:
    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse("home")

    return AuthMiddleware(Starlette(routes=[Route("/", home)]), auth)


async def test_an_app_without_a_sign_in_page_gets_the_built_in_one(
    app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    response = await client_factory(app).get("/signin?next=%2Fnotes")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page = Page(response.text)
    sign_in, sign_up_form = page.form("signin-form"), page.form("signup-form")
    for form, flow in ((sign_in, "signIn"), (sign_up_form, "signUp")):
        assert (form["method"], form["action"]) == ("post", "/api/auth/signin")
        assert form["inputs"]["flow"]["value"] == flow
        assert form["inputs"]["redirectTo"]["value"] == "/notes"
        for name in ("email", "password"):
            assert form["inputs"][name]["id"] in page.labels  # every field is labelled
    assert page.alerts == []
    assert '<html lang="en">' in response.text


async def test_a_failed_form_comes_back_with_the_error_beside_it_and_the_email_kept(
    app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    browser = client_factory(app)
    await sign_up(client_factory(app), "taken@example.com")
    posted = await browser.post(
        "/api/auth/signin",
        content=f"provider=password&flow=signUp&email=taken%40example.com&password={PASSWORD}",
        headers={**FORM_CT, "referer": "https://testserver/signin"},
    )
    assert posted.status_code == 303
    location = posted.headers["location"]
    assert urlsplit(location).path == "/signin"
    page = Page((await browser.get(location)).text)
    assert page.alerts == [("signup-error", "AccountExists")]
    assert page.form("signup-form")["inputs"]["email"]["value"] == "taken@example.com"
    assert page.form("signup-form")["inputs"]["email"]["aria-invalid"] == "true"
    assert page.form("signin-form")["inputs"]["email"]["value"] == ""
    assert PASSWORD not in location


async def test_the_built_in_page_signs_in_for_real(
    app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    await sign_up(client_factory(app), "real@example.com")
    browser = client_factory(app)
    posted = await browser.post(
        "/api/auth/signin",
        content=f"provider=password&flow=signIn&email=real%40example.com&password={PASSWORD}"
        "&redirectTo=%2F",
        headers={**FORM_CT, "referer": "https://testserver/signin"},
    )
    assert (posted.status_code, posted.headers["location"]) == (303, "/")
    again = Page((await browser.get("/signin")).text)
    assert again.alerts == []
    assert "already-signed-in" in (await browser.get("/signin")).text


async def test_the_apps_own_sign_in_page_wins(auth: Auth, client_factory: ClientFactory) -> None:
    app = AuthMiddleware(starlette_app(), auth)  # its catch-all route answers /signin
    response = await client_factory(app).get("/signin")
    assert response.headers["content-type"] == "application/json"


async def test_the_page_can_be_turned_off(auth: Auth, client_factory: ClientFactory) -> None:
    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse("home")

    app = AuthMiddleware(Starlette(routes=[Route("/", home)]), auth, sign_in_page=False)
    assert (await client_factory(app).get("/signin")).status_code == 404


async def test_an_app_template_overrides_the_page_and_keeps_the_forms(
    auth: Auth, client_factory: ClientFactory
) -> None:
    loader = jinja2.DictLoader(
        {
            "authbridge/signin.html": (
                '{% extends "authbridge/signin_base.html" %}'
                "{% block heading %}Welcome to Acme{% endblock %}"
            ),
        }
    )
    page = SignInPage(auth, loader=loader)
    app = AuthMiddleware(Starlette(routes=[]), auth, sign_in_page=page)
    html = (await client_factory(app).get("/signin")).text
    assert "<h1>Welcome to Acme</h1>" in html
    Page(html).form("signin-form")


def test_the_forms_embed_in_any_layout_with_the_macros() -> None:
    env = install(jinja2.Environment(loader=jinja2.DictLoader({}), autoescape=True))
    layout = env.from_string(
        '<main>{{ auth_forms.sign_in(prefix="/auth", next="/home") }}'
        '{{ auth_forms.sign_up(prefix="/auth") }}</main>'
    )
    page = Page(layout.render())
    assert page.form("signin-form")["action"] == "/auth/signin"
    assert page.form("signin-form")["inputs"]["redirectTo"]["value"] == "/home"
    assert page.form("signup-form")["inputs"]["flow"]["value"] == "signUp"


class FakeOAuth:
    """A stand-in for an OAuth provider: only what the page reads."""

    redirects = True

    def __init__(self, provider_id: str, name: str) -> None:
        self.id = provider_id
        self.name = name

    async def sign_in(self, ctx: Any, params: Any, request: Any) -> Any:
        raise NotImplementedError

    def routes(self) -> tuple[()]:
        return ()


async def test_oauth_providers_get_one_button_form_each(
    auth_factory: Any, client_factory: ClientFactory
) -> None:
    providers = [PasswordProvider(), FakeOAuth("github", "GitHub"), FakeOAuth("acme-id", "Acme")]
    auth = await auth_factory(auth_kwargs={"providers": providers})
    app = AuthMiddleware(Starlette(routes=[]), auth)
    html = (await client_factory(app).get("/signin")).text
    oauth = [f for f in Page(html).forms if "oauth-signin" in f.get("class", "")]
    assert [(f["data-provider"], f["inputs"]["provider"]["value"]) for f in oauth] == [
        ("github", "github"),
        ("acme-id", "acme-id"),
    ]
    assert re.search(r"Continue with GitHub", html)


async def test_configured_oauth_providers_get_a_button_on_the_built_in_page(
    auth_factory: Any, client_factory: ClientFactory
) -> None:
    from authbridge import OAuthProvider, OAuthProviderConfig

    github = OAuthProvider(OAuthProviderConfig(id="github", client_id="an-app"))
    auth = await auth_factory(auth_kwargs={"providers": [PasswordProvider(), github]})
    app = AuthMiddleware(Starlette(routes=[]), auth)
    html = (await client_factory(app).get("/signin")).text
    oauth = [f for f in Page(html).forms if "oauth-signin" in f.get("class", "")]
    assert [f["data-provider"] for f in oauth] == ["github"]
    assert "Continue with GitHub" in html


async def test_head_gets_the_headers_without_a_body(
    app: AuthMiddleware, client_factory: ClientFactory
) -> None:
    response = await client_factory(app).head("/signin")
    assert (response.status_code, response.content) == (200, b"")


async def test_other_404s_stay_404(app: AuthMiddleware, client_factory: ClientFactory) -> None:
    assert (await client_factory(app).get("/nowhere")).status_code == 404
    # Only GET and HEAD get the built-in page; the app has no POST /signin.
    assert (await client_factory(app).post("/signin")).status_code == 404
    await client_factory(app).aclose()


async def test_plain_http_client_is_fine(app: AuthMiddleware) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        assert (await client.get("/signin")).status_code == 200


async def test_with_anonymous_users_on_the_page_offers_to_continue_without_an_account(
    auth_factory: Any, client_factory: ClientFactory
) -> None:
    auth = await auth_factory(anonymous=True)

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse("home")

    client = client_factory(AuthMiddleware(Starlette(routes=[Route("/", home)]), auth))
    page = Page((await client.get("/signin?next=%2Fnotes")).text)
    form = page.form("anonymous-form")
    assert (form["method"], form["action"]) == ("post", "/api/auth/signin")
    assert form["inputs"]["provider"]["value"] == "anonymous"
    assert form["inputs"]["redirectTo"]["value"] == "/notes"
    signed = await client.post(
        "/api/auth/signin",
        data={"provider": "anonymous", "redirectTo": "/notes"},
        headers={**FORM_CT, "origin": str(client.base_url).rstrip("/")},
    )
    assert (signed.status_code, signed.headers["location"]) == (303, "/notes")
    account = (await client.get("/api/auth/account")).json()
    assert account["user"]["isAnonymous"] is True


@pytest.mark.parametrize("sharing", ["shared", "per_tab"])
async def test_the_page_tells_the_browser_client_its_sharing_mode(
    sharing: str, auth_factory: Any, client_factory: ClientFactory
) -> None:
    # Without the state island the client would fall back to shared mode, and per_tab forms
    # would carry no tab.
    auth = await auth_factory(session_sharing=sharing)

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse("home")

    client = client_factory(AuthMiddleware(Starlette(routes=[Route("/", home)]), auth))
    html = (await client.get("/signin")).text
    island = re.search(
        r'<script id="authbridge-state" type="application/json">(.*?)</script>', html
    )
    assert island is not None
    state = json.loads(island.group(1))
    assert (state["sharing"], state["prefix"], state["isAuthenticated"]) == (
        sharing,
        "/api/auth",
        False,
    )
    assert len(re.findall(r"src=\"/api/auth/client\.js[?\"]", html)) == 1
