"""Every configuration mistake fails at startup with a ConfigError that names the setting: the
option groups (passwords, rate limits, email, OAuth providers), AuthConfig's own fields, and the
``AUTHBRIDGE_*`` variables that feed them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from authbridge import AuthConfig, ConfigError, PasswordConfig, RateLimitConfig
from authbridge.config import EmailConfig, OAuthProviderConfig
from authbridge.mail import SmtpSender, parse_smtp_url
from authbridge.trusted import TrustedIssuer


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"min_length": -1}, "min_length <= max_bytes"),
        ({"min_length": 16, "max_bytes": 8}, "min_length <= max_bytes"),
        ({"argon2_time_cost": 0}, "time cost and parallelism"),
        ({"argon2_parallelism": 0}, "time cost and parallelism"),
        ({"argon2_memory_kib": 15, "argon2_parallelism": 2}, "8 KiB per lane"),
        ({"hash_workers": -1}, "must not be negative"),
        ({"hash_queue": -1}, "must not be negative"),
    ],
)
def test_password_policy_mistakes_are_refused(changes: dict[str, int], problem: str) -> None:
    with pytest.raises(ConfigError, match=f"^password: .*{problem}"):
        PasswordConfig(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"account_attempts": 0},
        {"ip_attempts": 0},
        {"sign_up_attempts": 0},
        {"period": timedelta(0)},
    ],
)
def test_rate_limit_mistakes_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"^rate_limit: "):
        RateLimitConfig(**changes)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"verification": "sometimes"}, "verification must be one of"),
        ({"code_lifetime": timedelta(0)}, "code_lifetime must be positive"),
        ({"resend_interval": timedelta(seconds=-1)}, "resend_interval >= 0"),
        ({"code_attempts": 0}, "at least 1"),
        ({"sends_per_hour": 0}, "at least 1"),
        ({"ip_sends_per_hour": 0}, "at least 1"),
        ({"smtp_timeout": timedelta(0)}, "smtp_timeout must be positive"),
        ({"smtp_attempts": 0}, "smtp_attempts >= 1"),
        ({"smtp_url": "http://mail.example.com"}, "must look like smtp://"),
    ],
)
def test_email_option_mistakes_are_refused(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        EmailConfig(**changes)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cret@mail.example.com",
        "smtp://user:s3cret@",
        "smtp://user:s3cret@mail.example.com:notaport",
        "smtps://user:s3cret@mail.example.com?starttls=1",
    ],
)
def test_smtp_urls_that_are_not_smtp_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError, match="AUTHBRIDGE_SMTP_URL") as caught:
        parse_smtp_url(url)
    assert "s3cret" not in str(caught.value)


def test_smtp_url_defaults_the_port_from_the_scheme_and_keeps_credentials() -> None:
    assert parse_smtp_url("smtps://mail.example.com").port == 465
    assert parse_smtp_url("smtp://mail.example.com?starttls=true").port == 587
    plain = parse_smtp_url("smtp://user%40x:p%3Ass@mail.example.com")
    assert (plain.port, plain.username, plain.password) == (25, "user@x", "p:ss")
    assert "p:ss" not in repr(plain)


@pytest.mark.parametrize("options", [{"attempts": 0}, {"timeout": 0.0}, {"backoff": -1.0}], ids=str)
def test_smtp_sender_refuses_impossible_retry_settings(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="SMTP sender"):
        SmtpSender(parse_smtp_url("smtp://127.0.0.1:2525"), "a@example.com", **options)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"id": "Bad Id"}, "must match"),
        ({"id": "x" * 33}, "must match"),
        ({"client_id": ""}, "client_id is required"),
        ({"issuer": "ftp://idp.example.com"}, "issuer must be an http"),
        ({"token_url": "idp.example.com/token"}, "token_url must be an http"),
        ({"scopes": ("openid email",)}, "scopes must be words"),
        ({"scopes": ("",)}, "scopes must be words"),
    ],
)
def test_oauth_provider_mistakes_are_refused(changes: dict[str, Any], problem: str) -> None:
    fields: dict[str, Any] = {"id": "idp", "client_id": "client", **changes}
    with pytest.raises(ConfigError, match=problem):
        OAuthProviderConfig(**fields)


def _issuer(url: str) -> TrustedIssuer:
    return TrustedIssuer(issuer=url, audience="app", jwks_url=f"{url}/jwks")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("database_url", None),
        ("site_url", "example.com"),
        ("session_total_duration", 30),
        ("anonymous_idle", timedelta(0)),
        ("anonymous", "yes"),
        ("cookie_max_age", timedelta(0)),
        ("reauth_path", "reauth"),
        ("max_sessions_per_user", True),
        ("max_sessions_per_user", 0),
        ("revocation_notify", "true"),
        ("totp", 1),
        ("passkeys", "on"),
        ("oauth", (OAuthProviderConfig(id="a", client_id="1"),) * 2),
        ("oauth", ("github",)),
        ("trusted_issuers", (_issuer("https://a.example.com"),) * 2),
        ("trusted_issuers", ("https://a.example.com",)),
    ],
)
def test_auth_config_names_the_field_it_refuses(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"^{field} "):
        AuthConfig(**{field: value})


def test_an_override_that_breaks_the_config_says_where_the_config_came_from() -> None:
    with pytest.raises(ConfigError, match=r"^invalid configuration from AUTHBRIDGE_\* .*audience"):
        AuthConfig.from_env({}, audience="")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_SESSIONS_PER_USER", "many"),
        ("MAX_SESSIONS_PER_USER", "0"),
        ("TOTP", "maybe"),
        ("PASSKEYS", "sometimes"),
        ("REVOCATION_NOTIFY", "maybe"),
        ("ANONYMOUS", "perhaps"),
        ("ANONYMOUS_IDLE", "a while"),
        ("ANONYMOUS_IDLE", "0"),
        ("JWT_PRIVATE_KEYS", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
        ("TRUSTED_ISSUERS", "not json"),
        ("SMTP_URL", "mail.example.com"),
        ("EMAIL_VERIFICATION", "always"),
        ("EMAIL_CONSOLE", "loud"),
        ("EMAIL_CODE_LIFETIME", "soon"),
    ],
)
def test_each_bad_variable_is_named_in_the_error(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"AUTHBRIDGE_{name}"):
        AuthConfig.from_env({f"AUTHBRIDGE_{name}": value})


def test_a_variable_that_breaks_the_email_group_names_the_group() -> None:
    with pytest.raises(ConfigError, match=r"AUTHBRIDGE_EMAIL_\*: .*code_lifetime"):
        AuthConfig.from_env({"AUTHBRIDGE_EMAIL_CODE_LIFETIME": "0"})


@pytest.mark.parametrize(
    ("value", "expected"), [("on", True), ("1", True), ("off", False), ("no", False)]
)
def test_second_factor_switches_read_true_and_false(value: str, expected: bool) -> None:
    config = AuthConfig.from_env({"AUTHBRIDGE_TOTP": value, "AUTHBRIDGE_PASSKEYS": value})
    assert (config.totp, config.passkeys) == (expected, expected)


def test_the_email_variables_build_the_email_group() -> None:
    config = AuthConfig.from_env(
        {
            "AUTHBRIDGE_SMTP_URL": "smtp://mail.example.com:2525",
            "AUTHBRIDGE_EMAIL_FROM": "Team <team@example.com>",
            "AUTHBRIDGE_EMAIL_VERIFICATION": "required",
            "AUTHBRIDGE_EMAIL_CONSOLE": "1",
            "AUTHBRIDGE_EMAIL_CODE_LIFETIME": "10m",
        }
    )
    assert config.email == EmailConfig(
        smtp_url="smtp://mail.example.com:2525",
        sender="Team <team@example.com>",
        verification="required",
        console=True,
        code_lifetime=timedelta(minutes=10),
    )


def test_an_oauth_provider_with_a_blank_client_id_stays_off() -> None:
    config = AuthConfig.from_env(
        {"AUTHBRIDGE_OAUTH_GITHUB_CLIENT_ID": "  ", "AUTHBRIDGE_OAUTH_GITHUB_CLIENT_SECRET": "s"}
    )
    assert config.oauth == ()


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"AUTHBRIDGE_OAUTH_Idp_CLIENT_ID": "c"}, "AUTHBRIDGE_OAUTH_Idp_CLIENT_ID: 'idp'"),
        (
            {
                "AUTHBRIDGE_OAUTH_IDP_CLIENT_ID": "c",
                "AUTHBRIDGE_OAUTH_IDP_STORE_PROVIDER_TOKENS": "?",
            },
            "AUTHBRIDGE_OAUTH_IDP_STORE_PROVIDER_TOKENS",
        ),
        (
            {"AUTHBRIDGE_OAUTH_IDP_CLIENT_ID": "c", "AUTHBRIDGE_OAUTH_IDP_ISSUER": "idp.example"},
            r"AUTHBRIDGE_OAUTH_IDP_\*",
        ),
    ],
)
def test_bad_oauth_variables_are_named(variables: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        AuthConfig.from_env(variables)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"issuer": "", "audience": "app"}, "'issuer' must be a non-empty string"),
        ({"issuer": "https://idp.example.com", "audience": ""}, "'audience' must be"),
        (
            {"issuer": "https://idp.example.com", "audience": "app", "subject": "email"},
            "'subject' must be",
        ),
    ],
)
def test_trusted_issuer_mistakes_are_refused(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        TrustedIssuer(**fields)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"issuer": "https://idp.example.com"}', "must be a JSON list"),
        ('["https://idp.example.com"]', "must be a JSON list"),
        ('[{"issuer": "https://idp.example.com", "aud": "app"}]', r"unknown field\(s\) aud"),
        ('[{"issuer": "https://idp.example.com"}]', "needs 'issuer' and 'audience'"),
    ],
)
def test_trusted_issuers_variable_mistakes_are_named(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"AUTHBRIDGE_TRUSTED_ISSUERS: .*{problem}"):
        AuthConfig.from_env({"AUTHBRIDGE_TRUSTED_ISSUERS": text})
