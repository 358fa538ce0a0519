"""The current session's endpoints: ``signout``, ``refresh``, ``token``, ``sessions`` and
``sessions/revoke``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from .._asgi import Scope, Send, json_response
from .._request import RequestContext
from ..errors import AuthError, StoreUnavailable
from ..sessions import Tokens
from ._plumbing import NO_STORE, Handler, HTTPError, Plumbing

__all__ = ["SessionRoutes"]

_REFRESH_FAILURES = {
    "refresh_token_reused": ("RefreshTokenReused", 401),
    "invalid_refresh_token": ("InvalidRefreshToken", 401),
    "unavailable": ("StoreUnavailable", 503),
}
"""Auth-state errors of a refresh the middleware already attempted, as endpoint errors."""


def _millis(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


class SessionRoutes:
    """Sign-out, refresh, the token and the session list of the signed-in browser."""

    def __init__(self, plumbing: Plumbing, refresh: Callable[[str], Awaitable[Tokens]]) -> None:
        self._p = plumbing
        self.auth = plumbing.auth
        self._refresh_once = refresh

    def routes(self) -> dict[str, tuple[str, Handler]]:
        """``{subpath: (method, handler)}``."""
        return {
            "signout": ("POST", self._sign_out),
            "refresh": ("POST", self._refresh),
            "token": ("POST", self._token),
            "sessions": ("GET", self._sessions),
            "sessions/revoke": ("POST", self._revoke),
        }

    async def _sign_out(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        state = ctx.state
        if state is not None and state.source == "bearer" and state.is_authenticated:
            # An API client signs out the session its bearer token belongs to.
            session_id: str | None = state.session_id
        else:
            session_id = self._p.current_session(ctx)
        if session_id is None and state is not None and state.error == "unavailable":
            # The session could not be identified because the database is down: saying
            # "signed out" while its refresh token stays valid would be a lie. Keep the cookies
            # so the client can retry.
            raise StoreUnavailable("cannot sign out while the database is unavailable")
        if session_id is not None:
            user_id = state.user_id if state is not None else None
            await self.auth.sign_out(
                session_id, user_id=user_id, ip=ctx.client_ip, user_agent=ctx.user_agent
            )
        ctx.clear_tokens(self.auth)
        await self._p.finish(scope, send, ctx, form, body, {"signedOut": True}, headers=[])

    async def _refresh(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        state = ctx.state
        if state is not None and state.error in _REFRESH_FAILURES:
            # The middleware already tried this refresh token (and cleared the cookies).
            code, status = _REFRESH_FAILURES[state.error]
            raise HTTPError(status, code)
        if state is not None and state.refreshed:
            # The middleware refreshed on the way in: answer with what it got.
            token, expires_at = state.token, state.expires_at
            user_id, session_id = state.user_id, state.session_id
        else:
            refresh = ctx.cookies.get(ctx.names.refresh)
            if not refresh:
                raise HTTPError(401, "InvalidRefreshToken")
            try:
                tokens = await self._refresh_once(refresh)
            except AuthError as exc:
                if exc.status == 401:
                    ctx.clear_tokens(self.auth)
                raise
            ctx.issue_tokens(self.auth, tokens)
            await ctx.end_evicted(self.auth)
            access = tokens.access
            token, expires_at = access.token, access.expires_at
            user_id, session_id = access.user_id, access.session_id
        payload = {
            "token": token,
            "expiresAt": _millis(expires_at),
            "userId": user_id,
            "sessionId": session_id,
        }
        await json_response(send, 200, payload, NO_STORE)

    async def _token(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        state = ctx.state
        if state is None or not state.is_authenticated or state.expires_at is None:
            raise HTTPError(401, "Unauthenticated")
        payload = {"token": state.token, "expiresAt": _millis(state.expires_at)}
        await json_response(send, 200, payload, NO_STORE)

    async def _sessions(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        user_id, current = self._p.signed_in(ctx)
        sessions = await self.auth.list_sessions(user_id)
        listed = [
            {
                "sessionId": s.session_id,
                "createdAt": s.created_at.isoformat(),
                "lastActiveAt": s.last_active_at.isoformat(),
                "userAgent": s.user_agent,
                "current": s.session_id == current,
            }
            for s in sessions
        ]
        await json_response(send, 200, {"sessions": listed}, NO_STORE)

    async def _revoke(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        user_id, current = self._p.signed_in(ctx)
        others = body.get("others")
        if others is True or (form and others in ("true", "1", "on")):
            ended = await self.auth.sign_out_other_sessions(user_id, current)
            await self.auth.events.emit(
                "session_revoked",
                user_id=user_id,
                session_id=current,
                reason=f"others ({ended})",
                ip=ctx.client_ip,
                user_agent=ctx.user_agent,
            )
        else:
            session_id = body.get("sessionId")
            if not isinstance(session_id, str) or not session_id:
                raise HTTPError(400, "InvalidParams")
            mine = {s.session_id for s in await self.auth.list_sessions(user_id)}
            if session_id not in mine:
                raise HTTPError(404, "SessionNotFound")
            await self.auth.sign_out(
                session_id,
                user_id=user_id,
                ip=ctx.client_ip,
                user_agent=ctx.user_agent,
                kind="session_revoked",
            )
            if session_id == current:
                ctx.clear_tokens(self.auth)
        await self._p.finish(scope, send, ctx, form, body, {"revoked": True}, headers=[])
