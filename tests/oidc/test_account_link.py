"""Linking a GitHub-shaped provider to a password account (``POST {prefix}/account/link``), then
signing in with either; refusals (someone else's identity, a stale sign-in) and unlinking."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest

from authbridge import Auth, AuthMiddleware
from authbridge.events import AuthEvent
from authbridge.providers import PasswordProvider
from authbridge.providers.oauth import OAuthProvider
from tests.toolkit.clients import asgi_client

from .conftest import APP, PREFIX, Browser, github_config, github_server, probe_app, random_login
from .github_server import GitHubServer
from .test_oauth_accounts import accounts_of, drive_github

PASSWORD = "correct horse battery staple"


@dataclass
class LinkApp:
    auth: Auth
    asgi: AuthMiddleware
    github: GitHubServer
    events: list[AuthEvent]
    browsers: list[Browser] = field(default_factory=list)

    def browser(self) -> Browser:
        app = asgi_client(self.asgi, APP)
        gh = httpx.AsyncClient(base_url=self.github.url, follow_redirects=False, timeout=10)
        browser = Browser(app, gh)
        self.browsers.append(browser)
        return browser


@pytest.fixture
async def link_app(auth_factory: Any) -> AsyncIterator[LinkApp]:
    async with github_server() as github:
        config = github_config(github)
        events: list[AuthEvent] = []
        auth = await auth_factory(
            {
                "providers": [PasswordProvider(), OAuthProvider(config)],
                "on_event": events.append,
            },
            site_url=APP,
            oauth=(config,),
        )
        app = LinkApp(auth, AuthMiddleware(probe_app(), auth), github, events)
        yield app
        for browser in app.browsers:
            await browser.app.aclose()
            await browser.idp.aclose()


async def sign_up(browser: Browser, email: str) -> str:
    response = await browser.app.post(
        f"{PREFIX}/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": email, "password": PASSWORD},
        },
    )
    user_id: str = response.json()["userId"]
    return user_id


async def link(browser: Browser, login: str) -> httpx.Response:
    started = await browser.app.post(
        f"{PREFIX}/account/link", json={"provider": "github", "redirectTo": "/account"}
    )
    assert started.status_code == 200, started.text
    return await browser.callback(await drive_github(browser, started.json()["redirect"], login))


async def test_a_password_account_links_github_and_signs_in_with_either(
    link_app: LinkApp,
) -> None:
    login = random_login("link")
    browser = link_app.browser()
    user_id = await sign_up(browser, "linker@example.com")
    response = await link(browser, login)
    assert response.headers["location"] == "/account"
    assert (await browser.whoami())["userId"] == user_id
    providers = [p for p, _ in await accounts_of(link_app.auth, user_id)]
    assert providers == ["github", "password"]
    linked = [e for e in link_app.events if e.kind == "account_linked"]
    assert [(e.user_id, e.provider) for e in linked] == [(user_id, "github")]
    # A new browser signs in with GitHub, another with the password: the same user.
    other = link_app.browser()
    url = await other.start("github")
    await other.callback(await drive_github(other, url, login))
    assert (await other.whoami())["userId"] == user_id
    third = link_app.browser()
    signed = await third.app.post(
        f"{PREFIX}/signin",
        json={
            "provider": "password",
            "params": {"flow": "signIn", "email": "linker@example.com", "password": PASSWORD},
        },
    )
    assert signed.json()["userId"] == user_id
    # Now either method may go, but not both.
    gone = await browser.app.post(f"{PREFIX}/account/unlink", json={"provider": "github"})
    assert gone.json() == {"unlinked": True}
    last = await browser.app.post(f"{PREFIX}/account/unlink", json={"provider": "password"})
    assert last.json() == {"error": "LastSignInMethod"}


async def test_linking_an_identity_that_belongs_to_someone_else_is_refused(
    link_app: LinkApp,
) -> None:
    login = random_login("taken")
    owner = link_app.browser()
    url = await owner.start("github")
    await owner.callback(await drive_github(owner, url, login))
    owner_id = (await owner.whoami())["userId"]
    browser = link_app.browser()
    user_id = await sign_up(browser, "second@example.com")
    response = await link(browser, login)
    assert "error=IdentityInUse" in response.headers["location"]
    assert [p for p, _ in await accounts_of(link_app.auth, user_id)] == ["password"]
    assert [p for p, _ in await accounts_of(link_app.auth, owner_id)] == ["github"]
    assert (await browser.whoami())["userId"] == user_id


async def test_linking_needs_a_recent_sign_in(link_app: LinkApp, clock: Any) -> None:
    browser = link_app.browser()
    await sign_up(browser, "stale@example.com")
    clock.advance(timedelta(minutes=5, seconds=1))
    response = await browser.app.post(f"{PREFIX}/account/link", json={"provider": "github"})
    assert (response.status_code, response.json()["error"]) == (401, "RecentAuthRequired")
