"""OAuth providers come from ``AUTHBRIDGE_OAUTH_<ID>_*`` (read only by ``AuthConfig.from_env``)."""

from __future__ import annotations

import pytest

from authbridge import AuthConfig
from authbridge.config import OAuthProviderConfig
from authbridge.errors import ConfigError


def test_a_provider_is_enabled_by_its_client_id_and_reads_every_variable() -> None:
    config = AuthConfig.from_env(
        {
            "AUTHBRIDGE_OAUTH_MY_IDP_CLIENT_ID": "cid",
            "AUTHBRIDGE_OAUTH_MY_IDP_CLIENT_SECRET": "s3cret",
            "AUTHBRIDGE_OAUTH_MY_IDP_ISSUER": "https://idp.example",
            "AUTHBRIDGE_OAUTH_MY_IDP_SCOPES": "openid email",
            "AUTHBRIDGE_OAUTH_MY_IDP_NAME": "My IdP",
            "AUTHBRIDGE_OAUTH_MY_IDP_AUTHORIZATION_URL": "https://idp.example/a",
            "AUTHBRIDGE_OAUTH_MY_IDP_TOKEN_URL": "https://idp.example/t",
            "AUTHBRIDGE_OAUTH_MY_IDP_USERINFO_URL": "https://idp.example/u",
            "AUTHBRIDGE_OAUTH_MY_IDP_JWKS_URL": "https://idp.example/k",
            "AUTHBRIDGE_OAUTH_MY_IDP_STORE_PROVIDER_TOKENS": "true",
            "AUTHBRIDGE_OAUTH_GITHUB_CLIENT_ID": "gh",
        }
    )
    github, mine = config.oauth
    assert github == OAuthProviderConfig(id="github", client_id="gh")
    assert mine == OAuthProviderConfig(
        id="my-idp",
        client_id="cid",
        client_secret="s3cret",
        issuer="https://idp.example",
        scopes=("openid", "email"),
        name="My IdP",
        authorization_url="https://idp.example/a",
        token_url="https://idp.example/t",
        userinfo_url="https://idp.example/u",
        jwks_url="https://idp.example/k",
        store_provider_tokens=True,
    )


def test_without_a_client_id_no_provider_is_configured() -> None:
    config = AuthConfig.from_env({"AUTHBRIDGE_OAUTH_GITHUB_CLIENT_SECRET": "x"})
    assert config.oauth == ()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"AUTHBRIDGE_OAUTH_BAD.ID_CLIENT_ID": "x"}, "AUTHBRIDGE_OAUTH_BAD.ID_CLIENT_ID"),
        ({"AUTHBRIDGE_OAUTH_" + "A" * 33 + "_CLIENT_ID": "x"}, "A" * 33),
        (
            {"AUTHBRIDGE_OAUTH_X_CLIENT_ID": "x", "AUTHBRIDGE_OAUTH_X_ISSUER": "idp.example"},
            "AUTHBRIDGE_OAUTH_X_",
        ),
        (
            {
                "AUTHBRIDGE_OAUTH_X_CLIENT_ID": "x",
                "AUTHBRIDGE_OAUTH_X_STORE_PROVIDER_TOKENS": "maybe",
            },
            "AUTHBRIDGE_OAUTH_X_STORE_PROVIDER_TOKENS",
        ),
    ],
)
def test_invalid_provider_variables_fail_at_startup_naming_the_variable(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        AuthConfig.from_env(env)


@pytest.mark.parametrize("provider_id", ["GitHub", "a_b", "", "x" * 33, "a/b"])
def test_provider_ids_are_lower_case_words_of_at_most_32_characters(provider_id: str) -> None:
    with pytest.raises(ConfigError):
        OAuthProviderConfig(id=provider_id, client_id="x")


def test_two_providers_with_one_id_are_refused() -> None:
    one = OAuthProviderConfig(id="github", client_id="a")
    with pytest.raises(ConfigError):
        AuthConfig(oauth=(one, one))
