"""Custom claims: an async hook whose result is signed into every access token we issue.

::

    async def claims(user: User, session: SessionInfo) -> dict[str, Any]:
        return {"role": await role_of(user.id), "org": user.data.get("org_id")}

    auth = Auth(config, claims=claims)

The hook runs at sign-in and at every refresh (so a changed role reaches the next token), gets the
``users`` row and the ``auth_sessions`` row, and its result is checked before signing: reserved
names (:data:`~authbridge.tokens.RESERVED_CLAIMS`) are refused with ``ReservedClaim``, values must
be JSON, and the token must still fit in a cookie (``TokenTooLarge``). A hook that is not async is
refused when the engine is built. The older ``custom_claims(user_id, session_id)`` factory keeps
working unchanged.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, TokenIssueError
from .tokens import RESERVED_CLAIMS

if TYPE_CHECKING:
    from .engine import User
    from .sessions import SessionInfo
    from .store import Store

__all__ = ["ClaimsHook", "ClaimsRunner", "check_claims_hook", "validate_claims"]

ClaimsHook = Callable[["User", "SessionInfo"], Awaitable[Mapping[str, Any]]]
"""``async claims(user, session) -> dict``: extra claims for the access token."""


def check_claims_hook(hook: object) -> ClaimsHook:
    """Check at startup that ``hook`` is an async callable.

    Raises:
        ConfigError: it is not callable, or not ``async``.
    """
    if not callable(hook):
        raise ConfigError("claims: expected an async function claims(user, session) -> dict")
    call = hook if inspect.isfunction(hook) or inspect.ismethod(hook) else type(hook).__call__
    if not inspect.iscoroutinefunction(call) and not inspect.iscoroutinefunction(hook):
        raise ConfigError(
            "claims: the hook must be async (async def claims(user, session) -> dict)"
        )
    return hook


def validate_claims(claims: object) -> dict[str, Any]:
    """Check a hook's result: a mapping with string keys, no reserved name, JSON values.

    Raises:
        TokenIssueError: ``ReservedClaim`` for a reserved name, ``InvalidClaims`` otherwise.
    """
    if not isinstance(claims, Mapping):
        raise TokenIssueError(
            f"claims hook returned {type(claims).__name__}, not a dict", code="InvalidClaims"
        )
    if not all(isinstance(k, str) for k in claims):
        raise TokenIssueError("claim names must be strings", code="InvalidClaims")
    clash = RESERVED_CLAIMS.intersection(claims)
    if clash:
        raise TokenIssueError(
            f"custom claims may not set reserved claims: {', '.join(sorted(clash))}",
            code="ReservedClaim",
        )
    result = dict(claims)
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TokenIssueError(f"claims must be JSON values: {exc}", code="InvalidClaims") from exc
    return result


class ClaimsRunner:
    """Loads the user and session rows and runs the hook (used by the session manager)."""

    def __init__(self, hook: ClaimsHook, store: Store) -> None:
        self.hook = check_claims_hook(hook)
        self._store = store

    async def collect(
        self, user_id: str, session_id: str, session: SessionInfo | None
    ) -> dict[str, Any]:
        """Run the hook for this user and session. ``session`` saves a read when the caller has
        the row (a session being created is not in the database yet).

        Raises:
            TokenIssueError: the user or session is gone, or the result is invalid.
            StoreUnavailable: the database failed.
        """
        from .sessions import SessionInfo
        from .store import sessions as session_rows
        from .store.users import UserRepository

        user = await UserRepository(self._store).get(user_id)
        if session is None:
            async with self._store.read() as conn:
                row = await session_rows.get_row(conn, self._store.tables, session_id)
            session = SessionInfo.from_row(row) if row is not None else None
        if user is None or session is None:
            raise TokenIssueError("the user or session no longer exists", code="InvalidClaims")
        return validate_claims(await self.hook(user, session))
