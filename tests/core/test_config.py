"""AuthConfig: one default per option, and from_env() reading every AUTHBRIDGE_* variable."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from authbridge import AuthConfig, ConfigError, RateLimitConfig
from authbridge.config import parse_duration
from authbridge.tokens import KeySet, generate_private_key_pem

ENV_VARIABLES = [
    "DATABASE_URL",
    "SITE_URL",
    "SESSION_SHARING",
    "JWT_DURATION",
    "SESSION_TOTAL_DURATION",
    "SESSION_INACTIVE_DURATION",
    "REFRESH_REUSE_WINDOW",
    "REVOCATION_POLL_INTERVAL",
    "JWT_PRIVATE_KEYS",
    "JWT_ALGORITHM",
    "AUDIENCE",
    "ALLOWED_ORIGINS",
    "COOKIE_MAX_AGE",
    "ROUTE_PREFIX",
    "SIGN_UPS_PER_IP",
]


def test_defaults_match_the_design() -> None:
    config = AuthConfig()
    assert config.database_url == "sqlite+aiosqlite:///./authbridge.db"
    assert config.session_sharing == "shared"
    assert config.jwt_duration == timedelta(hours=1)
    assert config.session_total_duration == timedelta(days=30)
    assert config.session_inactive_duration == timedelta(days=30)
    assert config.refresh_reuse_window == timedelta(seconds=10)
    assert config.revocation_poll_interval == timedelta(seconds=1)
    assert config.jwt_algorithm == "ES256"
    assert config.audience == "authbridge"
    assert config.route_prefix == "/api/auth"
    assert config.rate_limit.account_attempts == 10
    assert config.rate_limit.ip_attempts == 100
    assert config.rate_limit.sign_up_attempts == 20
    assert config.password.hash_queue == 0  # 16 per hashing thread
    assert config.rate_limit.period == timedelta(hours=1)
    assert (config.password.min_length, config.password.max_bytes) == (8, 1024)
    assert (
        config.password.argon2_memory_kib,
        config.password.argon2_time_cost,
        config.password.argon2_parallelism,
    ) == (19456, 2, 1)


def test_from_env_with_no_variables_gives_the_defaults() -> None:
    assert AuthConfig.from_env({}) == AuthConfig()


def test_every_default_is_declared_once_in_the_config_module() -> None:
    """Each field's default literal appears in its declaration and nowhere else in config.py."""
    source = Path(inspect.getfile(AuthConfig)).read_text()
    tree = ast.parse(source)
    field_names = {f.name for f in dataclasses.fields(AuthConfig)}
    declared: dict[str, int] = {}
    for node in ast.walk(tree):
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id in field_names:
            declared[target.id] = declared.get(target.id, 0) + 1
    assert declared == dict.fromkeys(field_names, 1)
    # Every field is documented where it is declared (a string right after the field).
    for f in dataclasses.fields(AuthConfig):
        assert f.name in source


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", timedelta(seconds=90)),
        ("10s", timedelta(seconds=10)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("30d", timedelta(days=30)),
        (" 2h ", timedelta(hours=2)),
        ("1.5h", timedelta(minutes=90)),
        ("0", timedelta(0)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "abc", "-5", "10x", "1.5", "5 minutes", "1e3", "9" * 30 + "d"]
)
def test_bad_durations_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def _env(**values: str) -> dict[str, str]:
    return {f"AUTHBRIDGE_{name}": value for name, value in values.items()}


def test_from_env_reads_every_variable() -> None:
    old, new = generate_private_key_pem("ES256"), generate_private_key_pem("EdDSA")
    config = AuthConfig.from_env(
        _env(
            DATABASE_URL="postgresql+asyncpg://app@db:5432/app",
            SITE_URL="https://app.example.com",
            SESSION_SHARING="per_tab",
            JWT_DURATION="15m",
            SESSION_TOTAL_DURATION="7d",
            SESSION_INACTIVE_DURATION="1d",
            REFRESH_REUSE_WINDOW="20s",
            REVOCATION_POLL_INTERVAL="2",
            JWT_PRIVATE_KEYS=old + "\n" + new,
            JWT_ALGORITHM="RS256",
            AUDIENCE="convex",
            ALLOWED_ORIGINS="https://a.example.com, https://b.example.com/",
            COOKIE_MAX_AGE="12h",
            ROUTE_PREFIX="/auth",
            SIGN_UPS_PER_IP="5",
        )
    )
    assert config == AuthConfig(
        database_url="postgresql+asyncpg://app@db:5432/app",
        site_url="https://app.example.com",
        session_sharing="per_tab",
        jwt_duration=timedelta(minutes=15),
        session_total_duration=timedelta(days=7),
        session_inactive_duration=timedelta(days=1),
        refresh_reuse_window=timedelta(seconds=20),
        revocation_poll_interval=timedelta(seconds=2),
        jwt_private_keys=(old.strip(), new.strip()),
        jwt_algorithm="RS256",
        audience="convex",
        allowed_origins=("https://a.example.com", "https://b.example.com"),
        cookie_max_age=timedelta(hours=12),
        route_prefix="/auth",
        rate_limit=RateLimitConfig(sign_up_attempts=5),
    )


SAMPLE_VALUES = {
    "DATABASE_URL": "sqlite+aiosqlite:///./other.db",
    "SITE_URL": "https://example.com",
    "SESSION_SHARING": "per_tab",
    "JWT_DURATION": "10m",
    "SESSION_TOTAL_DURATION": "90d",
    "SESSION_INACTIVE_DURATION": "3d",
    "REFRESH_REUSE_WINDOW": "0",
    "REVOCATION_POLL_INTERVAL": "5s",
    "JWT_PRIVATE_KEYS": generate_private_key_pem("ES256"),
    "JWT_ALGORITHM": "EdDSA",
    "AUDIENCE": "convex",
    "ALLOWED_ORIGINS": "https://example.org",
    "COOKIE_MAX_AGE": "1d",
    "ROUTE_PREFIX": "/auth",
    "SIGN_UPS_PER_IP": "50",
}


@pytest.mark.parametrize("name", ENV_VARIABLES)
def test_each_variable_alone_changes_the_config(name: str) -> None:
    assert AuthConfig.from_env(_env(**{name: SAMPLE_VALUES[name]})) != AuthConfig()


def test_concatenated_private_keys_keep_their_order_and_the_last_one_signs() -> None:
    pems = [generate_private_key_pem("ES256") for _ in range(3)]
    config = AuthConfig.from_env(_env(JWT_PRIVATE_KEYS="".join(pems)))
    assert len(config.jwt_private_keys) == 3
    keys = KeySet.from_texts(config.jwt_private_keys)
    assert keys.signing_key.kid == KeySet.from_texts([pems[-1]]).signing_key.kid


def test_private_keys_may_be_a_jwk_set() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm

    es256, eddsa = ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()
    jwks = {
        "keys": [
            ECAlgorithm.to_jwk(es256, as_dict=True),
            OKPAlgorithm.to_jwk(eddsa, as_dict=True),
        ]
    }
    config = AuthConfig.from_env(_env(JWT_PRIVATE_KEYS=json.dumps(jwks)))
    keys = KeySet.from_texts(config.jwt_private_keys)
    assert len(keys) == 2 and keys.signing_key.algorithm == "EdDSA"


def test_private_keys_may_use_escaped_newlines_on_one_line() -> None:
    pem = generate_private_key_pem("ES256")
    config = AuthConfig.from_env(_env(JWT_PRIVATE_KEYS=pem.strip().replace("\n", "\\n")))
    assert config.jwt_private_keys == (pem.strip(),)


def test_cookie_max_age_session_means_browser_session_cookies() -> None:
    config = AuthConfig.from_env(_env(COOKIE_MAX_AGE="session"))
    assert config.browser_session_cookies and config.cookie_max_age is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
        ("sqlite+aiosqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
    ],
)
def test_plain_database_urls_get_the_async_driver(url: str, expected: str) -> None:
    assert AuthConfig.from_env(_env(DATABASE_URL=url)).database_url == expected


def test_blank_variables_keep_the_defaults() -> None:
    assert AuthConfig.from_env(_env(JWT_DURATION="  ", AUDIENCE="")) == AuthConfig()


FLAG_FIELDS = {
    "REVOCATION_NOTIFY": lambda c: c.revocation_notify,
    "ANONYMOUS": lambda c: c.anonymous,
    "TOTP": lambda c: c.totp,
    "PASSKEYS": lambda c: c.passkeys,
    "EMAIL_CONSOLE": lambda c: c.email.console,
}


@pytest.mark.parametrize("name", sorted(FLAG_FIELDS))
@pytest.mark.parametrize(
    ("spelling", "expected"),
    [(t, True) for t in ("1", "true", "TRUE", "yes", "On")]
    + [(f, False) for f in ("0", "false", "False", "no", "OFF")],
)
def test_every_true_false_variable_accepts_the_same_spellings(
    name: str, spelling: str, expected: bool
) -> None:
    config = AuthConfig.from_env(_env(**{name: spelling}))
    assert FLAG_FIELDS[name](config) is expected


def test_overrides_win_over_the_environment() -> None:
    config = AuthConfig.from_env(_env(AUDIENCE="env"), audience="code")
    assert config.audience == "code"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://db/app"),
        ("SITE_URL", "app.example.com"),
        ("SESSION_SHARING", "per_window"),
        ("JWT_DURATION", "soon"),
        ("JWT_DURATION", "0"),
        ("SESSION_TOTAL_DURATION", "-1d"),
        ("SESSION_INACTIVE_DURATION", "0s"),
        ("REFRESH_REUSE_WINDOW", "ten"),
        ("REVOCATION_POLL_INTERVAL", "0"),
        ("JWT_PRIVATE_KEYS", "not a key"),
        ("JWT_PRIVATE_KEYS", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
        ("JWT_PRIVATE_KEYS", '{"kty": "EC"}'),
        ("JWT_ALGORITHM", "HS256"),
        ("ALLOWED_ORIGINS", "https://ok.example.com,not-an-origin"),
        ("ALLOWED_ORIGINS", "https://example.com/path"),
        ("COOKIE_MAX_AGE", "forever"),
        ("COOKIE_MAX_AGE", "0"),
        ("ROUTE_PREFIX", "api/auth"),
        ("ROUTE_PREFIX", "/api/auth/"),
        ("SIGN_UPS_PER_IP", "0"),
        ("SIGN_UPS_PER_IP", "many"),
        ("SIGN_UPS_PER_IP", "-3"),
        ("REVOCATION_NOTIFY", "maybe"),
        ("ANONYMOUS", "2"),
        ("TOTP", "enabled"),
        ("PASSKEYS", "y"),
        ("EMAIL_CONSOLE", "sometimes"),
    ],
)
def test_bad_variables_raise_config_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AuthConfig.from_env(_env(**{name: value}))
    assert f"AUTHBRIDGE_{name}" in str(caught.value)
    assert caught.value.code == "ConfigError"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("session_sharing", "both"),
        ("jwt_algorithm", "none"),
        ("jwt_duration", timedelta(0)),
        ("refresh_reuse_window", timedelta(seconds=-1)),
        ("route_prefix", "/api/"),
        ("sign_in_path", "signin"),
        ("max_tab_slots", 0),
        ("audience", ""),
        ("database_url", "oracle://db"),
        ("allowed_origins", ("https://example.com/",)),
        ("allowed_origins", "https://example.com"),
    ],
)
def test_invalid_fields_raise_config_error_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        AuthConfig(**{field: value})


def test_config_is_frozen_and_replace_returns_a_copy() -> None:
    config = AuthConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.audience = "x"  # type: ignore[misc]
    changed = config.replace(audience="convex")
    assert (config.audience, changed.audience) == ("authbridge", "convex")
