"""Auth events: one small stream of what happened, for audit logs and alerts.

Every sign-in, sign-out, failed sign-in, refresh-token reuse, password change, linked or unlinked
sign-in method, added or removed second factor, deleted account and revoked session becomes an
:class:`AuthEvent`. Each is logged at INFO on the ``authbridge.events`` logger and handed to the
app's hook, if any::

    async def audit(event: AuthEvent) -> None:
        await db.insert_audit_row(event.kind, event.user_id, event.ip, event.at)

    auth = Auth(config, on_event=audit)

Events never carry secrets: no passwords, codes, tokens, hashes or TOTP secrets. ``identifier``
is the provider's account identifier (an email for ``password``) or a passkey's id, and only on
the kinds where the app needs to know which method was involved. A hook that raises is logged
and otherwise ignored: an audit sink that is down never fails a sign-in.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = ["AuthEvent", "EventHook", "EventKind", "Events"]

logger = logging.getLogger("authbridge.events")

EventKind = Literal[
    "sign_in",
    "sign_in_failed",
    "sign_out",
    "refresh_token_reused",
    "session_revoked",
    "password_changed",
    "email_changed",
    "account_linked",
    "account_unlinked",
    "account_deleted",
    "anonymous_upgraded",
    "factor_added",
    "factor_removed",
]
"""What happened. ``factor_added``: the user confirmed a TOTP enrolment (``provider`` ``totp``),
registered a passkey (``passkey``) or replaced their recovery codes with new ones
(``recovery_codes``); ``factor_removed``: the user disabled TOTP (its recovery codes go with it)
or removed a passkey, which ended their other sessions."""


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """One thing that happened to a user's authentication."""

    kind: EventKind
    """What happened."""
    at: datetime
    """When (the engine's clock, UTC)."""
    user_id: str | None = None
    """The user concerned (``None`` for a failed sign-in: whether the account exists is not
    revealed, not even to the hook)."""
    session_id: str | None = None
    """The session concerned (the new one for ``sign_in``; the ended one for ``sign_out``,
    ``session_revoked`` and ``refresh_token_reused``)."""
    ip: str | None = None
    """The client's IP, when the event came from a request."""
    user_agent: str | None = None
    """The client's User-Agent, when the event came from a request."""
    provider: str | None = None
    """The sign-in method involved (``password``, ``github``, ``anonymous``, ...); for
    ``factor_added``/``factor_removed`` the factor (``totp``, ``passkey``, ``recovery_codes``)."""
    identifier: str | None = None
    """The provider's account identifier, for ``account_linked``/``account_unlinked``; the
    passkey's id (as ``GET {prefix}/passkeys`` lists it) for a passkey's
    ``factor_added``/``factor_removed``. Never a secret."""
    reason: str | None = None
    """A stable error code for ``sign_in_failed`` (``InvalidCredentials``, ``TooManyAttempts``,
    ...), what ended a session (``reuse``, ``password_changed``, ``others``, ...), or for a
    password or email change and a removed factor how many other sessions ended (``"2 other
    session(s) ended"``)."""


EventHook = Callable[[AuthEvent], Awaitable[None] | None]
"""``(event) -> None``, sync or async, called once per event after it is logged."""


class Events:
    """Logs events and hands them to the app's hook."""

    def __init__(self, hook: EventHook | None, clock: Callable[[], datetime]) -> None:
        self._hook = hook
        self._clock = clock

    async def emit(self, kind: EventKind, **fields: str | None) -> AuthEvent:
        """Record one event: log it at INFO and call the hook (whose errors are logged, never
        raised). Returns the event."""
        event = AuthEvent(kind, self._clock(), **fields)
        logger.info(
            "auth event %s user=%s session=%s provider=%s reason=%s ip=%s",
            kind,
            event.user_id,
            event.session_id,
            event.provider,
            event.reason,
            event.ip,
        )
        if self._hook is not None:
            try:
                result = self._hook(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("the on_event hook failed for a %s event", kind)
        return event
