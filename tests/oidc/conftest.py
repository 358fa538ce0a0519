"""Fixtures for the OAuth suite: the real IdP (oidc-provider on 127.0.0.1), the GitHub-shaped
server, a token-endpoint proxy that can slow down or rewrite answers, and in-process browsers
(``httpx`` against the app through ASGI, and against the IdP over real HTTP, each with its own
cookie jar) that click through the IdP's development login and consent pages."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authbridge import Auth, AuthMiddleware, get_auth_session_id, get_auth_user_id
from authbridge.config import OAuthProviderConfig
from authbridge.providers import PasswordProvider
from authbridge.providers.oauth import OAuthProvider
from tests.toolkit.clients import asgi_client
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory
from tests.toolkit.servers import serve

from .github_server import GitHubServer
from .idp import Idp, run_idp

APP = "https://localhost"
"""In-process apps live here (https, so httpx sends the Secure cookies back)."""
PREFIX = "/api/auth"
CONFIDENTIAL = "confidential-app"
PUBLIC = "public-app"
FORM_POST = "form-post-app"
CLIENT_SECRET = "confidential-secret-" + "0123456789abcdef" * 2


def callback_url(provider: str, base: str = APP) -> str:
    return f"{base}{PREFIX}/callback/{provider}"


@pytest.fixture
def clock(clock: FakeClock) -> FakeClock:
    """The shared fake clock, set to the real time: the IdP's tokens carry real timestamps."""
    from datetime import datetime, timezone

    clock.now = datetime.now(timezone.utc)
    return clock


@pytest.fixture(scope="module")
def idp() -> Iterator[Idp]:
    """The real OpenID provider for the module, with the confidential, public and form_post
    clients registered for in-process apps (ids ``oidc``, ``oidc-public``, ``oidc-post``)."""
    with run_idp() as running:
        running.register(idp_clients(APP))
        yield running


def idp_clients(base: str) -> list[dict[str, Any]]:
    """Client metadata for apps at ``base`` (confidential, public, form_post)."""
    return [
        {
            "client_id": CONFIDENTIAL,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [callback_url("oidc", base)],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        },
        {
            "client_id": CONFIDENTIAL + "-post",
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [
                callback_url("google", base),
                callback_url("gitlab", base),
                callback_url("microsoft", base),
                callback_url("apple", base),
            ],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        },
        {
            "client_id": PUBLIC,
            "redirect_uris": [callback_url("oidc-public", base)],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
    ]


def oidc_config(idp: Idp, provider: str = "oidc", **fields: Any) -> OAuthProviderConfig:
    """A generic OpenID provider at the IdP (confidential client unless overridden)."""
    values: dict[str, Any] = {
        "id": provider,
        "client_id": PUBLIC if provider == "oidc-public" else CONFIDENTIAL,
        "client_secret": None if provider == "oidc-public" else CLIENT_SECRET,
        "issuer": idp.issuer,
        "name": "Test IdP",
    }
    values.update(fields)
    return OAuthProviderConfig(**values)


# -- the app ---------------------------------------------------------------------------------------


async def whoami(request: Request) -> Response:
    return JSONResponse(
        {
            "userId": get_auth_user_id(request),
            "sessionId": get_auth_session_id(request),
            "path": request.url.path,
        }
    )


def probe_app() -> Starlette:
    return Starlette(routes=[Route("/{rest:path}", whoami, methods=["GET", "POST"])])


@dataclass
class Browser:
    """One browser: a cookie jar for the app (in-process) and one for the IdP (real HTTP)."""

    app: httpx.AsyncClient
    idp: httpx.AsyncClient
    tab: str | None = None

    async def start(
        self, provider: str = "oidc", redirect_to: str | None = "/after", *, form: bool = False
    ) -> str:
        """Start a sign-in; returns the authorization URL the app sent us to."""
        params = {} if redirect_to is None else {"redirectTo": redirect_to}
        headers = {"x-authbridge-tab": self.tab} if self.tab else {}
        if form:
            data = {"provider": provider, **params}
            if self.tab:
                data["authbridge_tab"] = self.tab
            response = await self.app.post(f"{PREFIX}/signin", data=data, headers=headers)
            assert response.status_code == 303, response.text
            return response.headers["location"]
        response = await self.app.post(
            f"{PREFIX}/signin", json={"provider": provider, "params": params}, headers=headers
        )
        assert response.status_code == 200, response.text
        url: str = response.json()["redirect"]
        return url

    async def authorize(
        self, url: str, login: str = "alice", *, deny: bool = False
    ) -> CallbackRequest:
        """Log in and consent at the IdP's development pages; returns where it sends us back."""
        return await drive_idp(self.idp, url, login, deny=deny)

    async def callback(self, cb: CallbackRequest, **kwargs: Any) -> httpx.Response:
        """Deliver the IdP's answer to the app."""
        parts = urlsplit(cb.url)
        assert f"{parts.scheme}://{parts.netloc}" == APP, cb.url
        target = parts.path + ("?" + parts.query if parts.query else "")
        if cb.method == "POST":
            kwargs.setdefault("headers", {}).setdefault("origin", "null")
            return await self.app.post(target, data=cb.form, **kwargs)
        return await self.app.get(target, **kwargs)

    async def sign_in(
        self, provider: str = "oidc", login: str = "alice", redirect_to: str | None = "/after"
    ) -> httpx.Response:
        url = await self.start(provider, redirect_to)
        return await self.callback(await self.authorize(url, login))

    async def whoami(self) -> dict[str, Any]:
        headers = {"x-authbridge-tab": self.tab} if self.tab else {}
        response = await self.app.get("/whoami", headers=headers)
        data: dict[str, Any] = response.json()
        return data


@dataclass(frozen=True)
class CallbackRequest:
    """How the IdP sends the browser back: a GET to ``url``, or a form POST of ``form``."""

    method: str
    url: str
    form: dict[str, str] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, str]:
        if self.method == "POST":
            return dict(self.form)
        return dict(parse_qsl(urlsplit(self.url).query))

    def with_params(self, **changes: str | None) -> CallbackRequest:
        """The same answer with parameters changed (``None`` removes one)."""
        params = self.params
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value
        if self.method == "POST":
            return CallbackRequest("POST", self.url, params)
        base = self.url.split("?", 1)[0]
        return CallbackRequest("GET", base + "?" + httpx.QueryParams(params).__str__())


class _Forms(HTMLParser):
    """The forms of a page: action, method and fields (enough for the IdP's dev pages)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {
                    "action": values.get("action", ""),
                    "method": values.get("method", "get"),
                    "fields": {},
                }
            )
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1]["fields"][values["name"]] = values.get("value", "")


def parse_forms(html: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


async def drive_idp(
    client: httpx.AsyncClient, url: str, login: str, *, deny: bool = False
) -> CallbackRequest:
    """Follow the IdP from the authorization URL through login and consent (bounded steps)."""
    app_origin = APP
    response = await client.get(url)
    for _ in range(12):
        if response.status_code in (302, 303):
            location = str(response.headers["location"])
            absolute = str(response.url.join(location))
            if not absolute.startswith(
                str(client.base_url).rstrip("/")
            ) and not absolute.startswith("http://127.0.0.1"):
                return CallbackRequest("GET", absolute)
            if absolute.startswith(app_origin):
                return CallbackRequest("GET", absolute)
            response = await client.get(absolute)
            continue
        assert response.status_code == 200, (response.status_code, response.text[:500])
        forms = parse_forms(response.text)
        page = response.text
        if forms and forms[0]["fields"].get("prompt") == "login":
            if deny:
                abort = re.search(r'href="([^"]*/abort)"', page)
                assert abort is not None, page[:500]
                response = await client.get(str(response.url.join(abort.group(1))))
                continue
            action = str(response.url.join(forms[0]["action"]))
            response = await client.post(
                action, data={"prompt": "login", "login": login, "password": "any"}
            )
            continue
        if forms and forms[0]["fields"].get("prompt") == "consent":
            action = str(response.url.join(forms[0]["action"]))
            response = await client.post(action, data={"prompt": "consent"})
            continue
        if forms:  # form_post: the page auto-submits its fields to the callback
            form = forms[0]
            return CallbackRequest("POST", form["action"], dict(form["fields"]))
        raise AssertionError(f"unexpected IdP page: {page[:500]}")
    raise AssertionError("the IdP did not send the browser back within 12 steps")


@dataclass
class OAuthApp:
    """An app with OAuth providers, and browsers for it."""

    auth: Auth
    asgi: Any
    idp: Idp
    browsers: list[Browser] = field(default_factory=list)

    def browser(self, tab: str | None = None) -> Browser:
        app_client = asgi_client(self.asgi, APP)
        idp_client = httpx.AsyncClient(base_url=self.idp.issuer, follow_redirects=False, timeout=10)
        browser = Browser(app_client, idp_client, tab)
        self.browsers.append(browser)
        return browser

    def provider(self, provider_id: str = "oidc") -> OAuthProvider:
        provider = self.auth.providers[provider_id]
        assert isinstance(provider, OAuthProvider)
        return provider


OAuthAppFactory = Callable[..., Awaitable[OAuthApp]]


@pytest.fixture
async def oauth_app_factory(idp: Idp, auth_factory: AuthFactory) -> AsyncIterator[OAuthAppFactory]:
    """Apps at ``https://localhost`` signing in with the IdP: ``factory(*provider_configs,
    timeout=..., **config_overrides)`` (default: the generic ``oidc`` provider)."""
    made: list[OAuthApp] = []

    async def factory(
        *providers: OAuthProviderConfig, timeout: float = 10.0, **overrides: Any
    ) -> OAuthApp:
        configs = providers or (oidc_config(idp),)
        provider_objects: list[Any] = [PasswordProvider()]
        from datetime import timedelta

        provider_objects += [OAuthProvider(c, timeout=timedelta(seconds=timeout)) for c in configs]
        auth = await auth_factory(
            {"providers": provider_objects}, site_url=APP, oauth=tuple(configs), **overrides
        )
        app = OAuthApp(auth, AuthMiddleware(probe_app(), auth), idp)
        made.append(app)
        return app

    yield factory
    for app in made:
        for browser in app.browsers:
            await browser.app.aclose()
            await browser.idp.aclose()


@pytest.fixture
async def oauth_app(oauth_app_factory: OAuthAppFactory) -> OAuthApp:
    return await oauth_app_factory()


# -- servers in this event loop ------------------------------------------------------------------


@dataclass
class TokenProxy:
    """Forwards token requests to the IdP; can answer slowly or rewrite the JSON answer."""

    upstream: str
    url: str = ""
    delay_s: float = 0.0
    rewrite: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """Rewrites the IdP's JSON answer."""
    rewrite_request: Callable[[dict[str, str]], dict[str, str]] | None = None
    """Rewrites the form posted to the IdP (sees what the app sent)."""
    calls: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        import asyncio

        if scope["type"] != "http":
            return
        self.calls += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {
            k.decode(): v.decode()
            for k, v in scope["headers"]
            if k.lower() in (b"authorization", b"content-type", b"accept")
        }
        if self.rewrite_request is not None:
            from urllib.parse import urlencode

            form = self.rewrite_request(dict(parse_qsl(body.decode())))
            body = urlencode(form).encode()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        async with httpx.AsyncClient(timeout=10) as client:
            upstream = await client.post(self.upstream, content=body, headers=headers)
        payload = upstream.content
        if self.rewrite is not None and upstream.status_code == 200:
            import json

            payload = json.dumps(self.rewrite(upstream.json())).encode()
        await send(
            {
                "type": "http.response.start",
                "status": upstream.status_code,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@contextlib.asynccontextmanager
async def token_proxy(idp: Idp) -> AsyncIterator[TokenProxy]:
    proxy = TokenProxy(idp.issuer + "/token")
    async with serve(proxy) as url:
        proxy.url = url + "/token"
        yield proxy


@contextlib.asynccontextmanager
async def github_server(base: str = APP) -> AsyncIterator[GitHubServer]:
    server = GitHubServer(redirect_uris=[callback_url("github", base)])
    async with serve(server) as url:
        server.url = url
        yield server


def github_config(server: GitHubServer, **fields: Any) -> OAuthProviderConfig:
    values: dict[str, Any] = {
        "id": "github",
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        "authorization_url": server.url + "/login/oauth/authorize",
        "token_url": server.url + "/login/oauth/access_token",
        "userinfo_url": server.url + "/user",
    }
    values.update(fields)
    return OAuthProviderConfig(**values)


def claims_of(token: str) -> dict[str, Any]:
    import jwt

    data: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return data


def random_login(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


__all__ = [
    "APP",
    "PREFIX",
    "Browser",
    "CallbackRequest",
    "Mapping",
    "OAuthApp",
]
