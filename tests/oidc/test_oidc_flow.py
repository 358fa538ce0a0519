"""Sign in through a real OpenID provider (oidc-provider), in process: start, log in and consent
at the IdP's development pages, come back, be signed in."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from .conftest import OAuthApp


async def test_the_json_start_answers_a_redirect_to_the_idp_with_pkce_state_and_nonce(
    oauth_app: OAuthApp,
) -> None:
    browser = oauth_app.browser()
    url = await browser.start()
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    assert url.startswith(oauth_app.idp.issuer + "/auth?")
    assert query["response_type"] == "code"
    assert query["client_id"] == "confidential-app"
    assert query["redirect_uri"] == "https://localhost/api/auth/callback/oidc"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 43 and len(query["nonce"]) >= 43
    assert query["scope"] == "openid email profile"


async def test_a_user_signs_in_and_lands_on_the_page_they_started_from(
    oauth_app: OAuthApp,
) -> None:
    browser = oauth_app.browser()
    response = await browser.sign_in(login="alice", redirect_to="/notes?x=1")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/notes?x=1"
    me = await browser.whoami()
    assert me["userId"] is not None
    user = await oauth_app.auth.get_user(me["userId"])
    assert user is not None
    assert user.email == "alice@example.test"
    assert user.name == "Test alice"
    assert user.data["email_verified_at"] is not None
