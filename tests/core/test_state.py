"""Request helpers: ids without the database, rows with one cached query, loud failures when the
middleware is missing. Scopes are built by hand, as the middleware would build them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.requests import Request

from authbridge import (
    Auth,
    AuthState,
    AuthUser,
    get_auth_session,
    get_auth_session_id,
    get_auth_state,
    get_auth_user,
    get_auth_user_id,
)
from authbridge.state import SCOPE_ENGINE
from tests.toolkit.sql import record_statements

PASSWORD = "correct horse battery"


def make_scope(auth: Auth | None, state: AuthState | None) -> dict[str, Any]:
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "headers": []}
    if state is not None:
        scope["auth"] = state
        scope["user"] = AuthUser(state)
    if auth is not None:
        scope[SCOPE_ENGINE] = auth
    return scope


AS_SCOPE: Callable[[dict[str, Any]], Any] = lambda scope: scope  # noqa: E731
AS_REQUEST: Callable[[dict[str, Any]], Any] = Request
WRAPPERS = pytest.mark.parametrize("wrap", [AS_SCOPE, AS_REQUEST], ids=["scope", "request"])


async def signed_in_state(auth: Auth) -> AuthState:
    result = await auth.sign_up_with_password("ada@example.com", PASSWORD)
    access = auth.verify_token(result.tokens.access.token)
    return AuthState(
        user_id=access.user_id,
        session_id=access.session_id,
        token=access.token,
        claims=access.claims,
        expires_at=access.expires_at,
        source="cookie",
    )


@WRAPPERS
async def test_ids_come_from_the_state_without_database_access(
    auth: Auth, wrap: Callable[[dict[str, Any]], Any]
) -> None:
    state = await signed_in_state(auth)
    request = wrap(make_scope(auth, state))
    with record_statements(auth) as log:
        assert get_auth_user_id(request) == state.user_id
        assert get_auth_session_id(request) == state.session_id
        assert get_auth_state(request) is state
    assert log.statements == []


@WRAPPERS
async def test_user_and_session_rows_cost_one_query_each_per_request(
    auth: Auth, wrap: Callable[[dict[str, Any]], Any]
) -> None:
    state = await signed_in_state(auth)
    request = wrap(make_scope(auth, state))
    with record_statements(auth) as log:
        user = await get_auth_user(request)
        assert user is not None and user.id == state.user_id
        assert user.email == "ada@example.com"
        assert await get_auth_user(request) is user
        assert len(log.statements) == 1
        session = await get_auth_session(request)
        assert session is not None and session.session_id == state.session_id
        assert await get_auth_session(request) is session
        assert len(log.statements) == 2
    # Another request queries again.
    with record_statements(auth) as log:
        assert await get_auth_user(wrap(make_scope(auth, state))) == user
    assert len(log.statements) == 1


@WRAPPERS
async def test_anonymous_requests_get_none_without_queries(
    auth: Auth, wrap: Callable[[dict[str, Any]], Any]
) -> None:
    request = wrap(make_scope(auth, AuthState(error="expired")))
    with record_statements(auth) as log:
        assert get_auth_user_id(request) is None
        assert get_auth_session_id(request) is None
        assert await get_auth_user(request) is None
        assert await get_auth_session(request) is None
    assert log.statements == []


async def test_a_signed_out_session_reads_as_none(auth: Auth) -> None:
    state = await signed_in_state(auth)
    assert state.session_id is not None
    await auth.sign_out(state.session_id)
    assert await get_auth_session(make_scope(auth, state)) is None


@WRAPPERS
@pytest.mark.parametrize(
    "helper", [get_auth_user_id, get_auth_session_id, get_auth_state], ids=lambda f: f.__name__
)
def test_sync_helpers_without_the_middleware_raise_a_clear_runtime_error(
    wrap: Callable[[dict[str, Any]], Any], helper: Callable[[Any], Any]
) -> None:
    with pytest.raises(RuntimeError, match="AuthMiddleware"):
        helper(wrap(make_scope(None, None)))


@WRAPPERS
@pytest.mark.parametrize("helper", [get_auth_user, get_auth_session], ids=lambda f: f.__name__)
async def test_row_helpers_without_the_middleware_raise_a_clear_runtime_error(
    wrap: Callable[[dict[str, Any]], Any], helper: Callable[[Any], Any]
) -> None:
    with pytest.raises(RuntimeError, match="AuthMiddleware"):
        await helper(wrap(make_scope(None, None)))
    # A state without the engine (a hand-made scope) is just as loud for rows.
    with pytest.raises(RuntimeError, match="AuthMiddleware"):
        await helper(wrap(make_scope(None, AuthState(user_id="u", session_id="s"))))


def test_helpers_refuse_things_that_are_not_requests() -> None:
    with pytest.raises(TypeError):
        get_auth_user_id(42)  # type: ignore[arg-type]


def test_auth_state_is_read_only_and_tracks_use() -> None:
    state = AuthState(user_id="u", session_id="s", claims={"role": "admin"})
    assert not state.was_used
    with pytest.raises(AttributeError):
        state.user_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        state.claims["role"] = "root"  # type: ignore[index]
    assert state.is_authenticated and state.was_used
    assert state.scopes == ("authenticated",)


def test_auth_user_speaks_starlettes_base_user_interface() -> None:
    signed_in, anonymous = AuthUser(AuthState(user_id="u")), AuthUser(AuthState())
    assert (signed_in.is_authenticated, signed_in.identity, signed_in.display_name) == (
        True,
        "u",
        "u",
    )
    assert (anonymous.is_authenticated, anonymous.identity, bool(anonymous)) == (False, "", False)
    request = Request(make_scope(None, AuthState(user_id="u")))
    assert request.user.is_authenticated
