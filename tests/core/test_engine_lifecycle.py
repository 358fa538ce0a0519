"""The engine before and around ``open()``: components that need an open engine say so, tables
can be created on demand, and the provider-token and bearer helpers refuse what they cannot do."""

from __future__ import annotations

import pytest

from authbridge import AccessToken, Auth, AuthConfig, InvalidParams
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import FAST_PASSWORDS, signing_key


def _config(url: str) -> AuthConfig:
    return AuthConfig(database_url=url, password=FAST_PASSWORDS, jwt_private_keys=(signing_key(),))


async def test_components_of_an_engine_that_is_not_open_say_how_to_open_it(
    sqlite_url: str,
) -> None:
    auth = Auth(_config(sqlite_url))
    for use in (lambda: auth.issuer, lambda: auth.sessions, lambda: auth.verify_token("x.y.z")):
        with pytest.raises(RuntimeError, match=r"await auth\.open\(\) or use AuthMiddleware"):
            use()
    await auth.close()


async def test_create_tables_makes_the_missing_tables(sqlite_url: str, clock: FakeClock) -> None:
    auth = Auth(_config(sqlite_url), clock=clock)
    try:
        assert "users" in await auth.store.missing_tables()
        await auth.create_tables()
        assert await auth.store.missing_tables() == []
        await auth.create_tables()  # idempotent
        signed = await auth.sign_up_with_password("new@example.com", "a long enough password")
        assert await auth.get_user(signed.user_id) is not None
    finally:
        await auth.close()


async def test_provider_tokens_are_only_for_oauth_providers(auth: Auth) -> None:
    signed = await auth.sign_up_with_password("pt@example.com", "a long enough password")
    with pytest.raises(InvalidParams, match="'password' is not an OAuth provider"):
        await auth.provider_access_token(signed.user_id, "password")
    with pytest.raises(InvalidParams, match="'github' is not an OAuth provider"):
        await auth.provider_access_token(signed.user_id, "github")


async def test_without_trusted_issuers_a_bearer_token_is_one_of_ours(auth: Auth) -> None:
    signed = await auth.sign_up_with_password("bearer@example.com", "a long enough password")
    verified = await auth.verify_bearer(signed.tokens.access.token)
    assert isinstance(verified, AccessToken)
    assert (verified.user_id, verified.session_id) == (signed.user_id, signed.session_id)
