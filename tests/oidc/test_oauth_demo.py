"""The notes demo shows one ``form.oauth-signin`` per configured provider (DESIGN §17.3), posting
to the sign-in endpoint, in its own template partial."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from authbridge import AuthConfig, OAuthProviderConfig
from examples.notes.app import create_app
from tests.toolkit.engines import FAST_PASSWORDS


async def test_the_sign_in_page_has_a_form_per_configured_provider(tmp_path: Path) -> None:
    config = AuthConfig(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/demo.db",
        site_url="http://localhost",
        password=FAST_PASSWORDS,
        oauth=(
            OAuthProviderConfig(id="github", client_id="gh"),
            OAuthProviderConfig(
                id="company-sso", client_id="c", issuer="https://sso.example", name="SSO"
            ),
        ),
    )
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        page = (await client.get("/signin?next=/notes")).text
        forms = re.findall(
            r'<form class="oauth-signin" data-provider="([^"]+)"[^>]*>(.*?)</form>', page, re.S
        )
        assert [provider for provider, _ in forms] == ["github", "company-sso"]
        github = forms[0][1]
        assert 'name="provider" value="github"' in github
        assert 'name="redirectTo" value="/notes"' in github
        assert ">GitHub</button>" in github and ">SSO</button>" in forms[1][1]
        assert 'action="/api/auth/signin"' in page
        start = await client.post(
            "/api/auth/signin", data={"provider": "github", "redirectTo": "/notes"}
        )
        assert start.status_code == 303
        assert start.headers["location"].startswith("https://github.com/login/oauth/authorize?")
    await app.auth.close()


async def test_without_providers_the_sign_in_page_has_no_oauth_section(tmp_path: Path) -> None:
    config = AuthConfig(database_url=f"sqlite+aiosqlite:///{tmp_path}/demo.db")
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        page = (await client.get("/signin")).text
    assert "oauth-signin" not in page
    await app.auth.close()
