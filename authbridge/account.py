"""Account management: the signed-in user's own account (DESIGN §17.5).

Endpoints under the auth prefix (JSON or forms; POSTs keep the same-origin check):

* ``GET account`` → ``{"user": {...}, "methods": [{"provider", "identifier"}], "sessions": n}``
  (identifiers masked: ``a***@example.com``).
* ``POST account/password`` ``{"currentPassword", "newPassword"}`` → ``{"changed": true}``; every
  other session of the user ends.
* ``POST account/email`` ``{"email"}`` → ``{"started": true}`` (a code to the new address, the same
  answer when it is taken), then ``{"email", "code"}`` → ``{"changed": true}`` (verified; the
  password sign-in follows; the old address is told; every other session of the user ends).
* ``POST account/link`` ``{"provider", "redirectTo"?}`` → ``{"redirect": url}``: an OAuth round
  trip that attaches the identity to this user (refused when it belongs to someone else).
* ``POST account/unlink`` ``{"provider"}`` → ``{"unlinked": true}`` (never the last method).
* ``POST account/delete`` ``{"password"?}`` → ``{"deleted": true}``: the app's
  ``before_delete_user`` hook runs first, then the user and every row keyed to it go.

Changing the email, linking, unlinking and deleting without a password need a *recent
authentication*: the session authenticated within
:data:`~authbridge.recent.DEFAULT_RECENT_AUTH_MAX_AGE` (five minutes, read from the session's
``auth_time`` by :func:`authbridge.recent.is_recent`; else ``RecentAuthRequired``, 401: sign in
again).
Changing the password proves it with ``currentPassword``. Every action is rate limited (per user
and per client, through the providers' limiter) and recorded as an auth event.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import (
    AccountError,
    AuthError,
    EmailUnavailable,
    InvalidCode,
    InvalidCredentials,
    InvalidParams,
    InvalidPassword,
    LastSignInMethod,
    MethodNotLinked,
    RecentAuthRequired,
    TooManyAttempts,
)
from .passwords import normalize_password
from .providers import Redirect, SignInRequest, normalize_email, str_param
from .providers.email import use_code
from .ratelimit import Bucket
from .recent import DEFAULT_RECENT_AUTH_MAX_AGE, is_recent
from .store.users import User

if TYPE_CHECKING:
    from ._asgi import Scope, Send
    from ._request import RequestContext
    from .endpoints import AuthEndpoints
    from .engine import Auth

__all__ = ["AccountRoutes", "mask_identifier", "user_json"]

logger = logging.getLogger("authbridge.account")

EMAIL_CHANGE = "email-change"
"""The code purpose (and message template) of an email change."""

Handler = Callable[["Scope", "Send", "RequestContext", Mapping[str, Any], bool], Awaitable[None]]


def mask_identifier(identifier: str) -> str:
    """Enough of an account identifier to recognise it, not to harvest it:
    ``alice@example.com`` → ``a***@example.com``, ``12345678`` → ``***5678``."""
    local, at, domain = identifier.rpartition("@")
    if at and local:
        return f"{local[0]}***@{domain}"
    return "***" + identifier[-4:] if len(identifier) > 6 else "***"


def user_json(user: User) -> dict[str, Any]:
    """The user as the account endpoint shows it."""
    return {
        "id": user.id,
        "email": user.email,
        "emailVerified": user.data.get("email_verified_at") is not None,
        "name": user.name,
        "image": user.image,
        "isAnonymous": user.is_anonymous,
        "createdAt": user.created_at.isoformat(),
    }


class AccountRoutes:
    """The ``account`` endpoints, registered on :class:`~authbridge.endpoints.AuthEndpoints`."""

    def __init__(self, endpoints: AuthEndpoints) -> None:
        self._endpoints = endpoints
        self.auth: Auth = endpoints.auth

    def routes(self) -> dict[str, tuple[str, Handler]]:
        """``{subpath: (method, handler)}``."""
        return {
            "account": ("GET", self._overview),
            "account/password": ("POST", self._password),
            "account/email": ("POST", self._email),
            "account/link": ("POST", self._link),
            "account/unlink": ("POST", self._unlink),
            "account/delete": ("POST", self._delete),
        }

    # -- plumbing -------------------------------------------------------------------------------

    def _request(self, ctx: RequestContext) -> tuple[str, str, SignInRequest]:
        user_id, session_id = self._endpoints.signed_in(ctx)
        request = SignInRequest(
            ip=ctx.client_ip, user_agent=ctx.user_agent, user_id=user_id, session_id=session_id
        )
        return user_id, session_id, request

    async def _limited(self, user_id: str, request: SignInRequest) -> None:
        """Spend one token of the user's and the client's account-action buckets.

        Raises:
            TooManyAttempts: too many account actions.
        """
        limiter = self.auth.rate_limiter
        buckets = [Bucket(f"account-action:{user_id}", self.auth.config.rate_limit.ip_attempts)]
        async with limiter.attempt(keep=[*buckets, *limiter.clients(request)]) as attempt:
            attempt.succeed()

    def _require_recent(self, ctx: RequestContext) -> None:
        """Raises RecentAuthRequired unless the request's session authenticated recently."""
        state = ctx.state
        max_age = DEFAULT_RECENT_AUTH_MAX_AGE
        if state is None or not is_recent(state, max_age, self.auth.clock()):
            raise RecentAuthRequired(max_age, "this action needs a recent sign-in")

    async def _check_password(self, user_id: str, password: str, request: SignInRequest) -> str:
        """Verify the user's password (rate limited like a sign-in). Returns the account id.

        Raises:
            MethodNotLinked: the user has no password.
            InvalidCredentials: wrong password.
            TooManyAttempts: too many wrong passwords.
        """
        account = next(
            (a for a in await self.auth.accounts.for_user(user_id) if a.provider == "password"),
            None,
        )
        if account is None or account.secret is None:
            raise MethodNotLinked("no password to check")
        limiter = self.auth.rate_limiter
        bucket = limiter.account("password", account.provider_account_id, request)
        async with limiter.attempt(reset=[bucket], refund=limiter.clients(request)) as attempt:
            try:
                policy = dataclasses.replace(self.auth.config.password, min_length=0)
                candidate = normalize_password(password, policy)
            except InvalidPassword as exc:
                raise InvalidCredentials() from exc
            if not (await self.auth.passwords.verify(account.secret, candidate)).ok:
                raise InvalidCredentials()
            attempt.succeed()
        return account.id

    async def _done(
        self,
        scope: Scope,
        send: Send,
        ctx: RequestContext,
        form: bool,
        body: Mapping[str, Any],
        payload: dict[str, Any],
    ) -> None:
        await self._endpoints.finish(scope, send, ctx, form, body, payload)

    # -- endpoints ------------------------------------------------------------------------------

    async def _overview(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        user_id, _, _ = self._request(ctx)
        user = await self.auth.get_user(user_id)
        if user is None:
            raise AccountError("the user no longer exists", code="Unauthenticated")
        methods = [
            {"provider": a.provider, "identifier": mask_identifier(a.provider_account_id)}
            for a in await self.auth.accounts.for_user(user_id)
        ]
        sessions = len(await self.auth.list_sessions(user_id))
        await self._done(
            scope,
            send,
            ctx,
            False,
            body,
            {"user": user_json(user), "methods": methods, "sessions": sessions},
        )

    async def _password(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        user_id, session_id, request = self._request(ctx)
        current = str_param(body, "currentPassword")
        new = normalize_password(str_param(body, "newPassword"), self.auth.config.password)
        await self._limited(user_id, request)
        account_id = await self._check_password(user_id, current, request)
        await self.auth.accounts.set_secret(account_id, await self.auth.passwords.hash(new))
        ended = await self.auth.sign_out_other_sessions(user_id, session_id)
        await self.auth.events.emit(
            "password_changed",
            user_id=user_id,
            session_id=session_id,
            provider="password",
            ip=request.ip,
            user_agent=request.user_agent,
            reason=f"{ended} other session(s) ended",
        )
        await self._done(scope, send, ctx, form, body, {"changed": True})

    async def _email(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        user_id, session_id, request = self._request(ctx)
        email = normalize_email(str_param(body, "email"))
        code = body.get("code")
        self._require_recent(ctx)
        await self._limited(user_id, request)
        delivery = self.auth.email
        if code is None or code == "":
            # The same answer whether or not the address is taken (no account enumeration).
            if await self.auth.users.id_by_email(email) is None:
                await delivery.send_email(EMAIL_CHANGE, email, ip=request.ip, user_id=user_id)
            await self._done(scope, send, ctx, form, body, {"started": True})
            return
        if not isinstance(code, str):
            raise InvalidParams("code must be a string")
        used = await use_code(self.auth.provider_context, request, [EMAIL_CHANGE], email, code)
        if used.user_id != user_id:
            raise InvalidCode()
        user = await self.auth.get_user(user_id)
        old = user.email if user is not None else None
        await self.auth.users.set_email(user_id, email, verified_at=self.auth.clock())
        await self.auth.accounts.rename(user_id, "password", email)
        # Whoever else was signed in as this user is signed out: the account's address moved.
        ended = await self.auth.sign_out_other_sessions(user_id, session_id)
        if old and old != email:
            try:
                await delivery.send_email("email-changed", old, ip=request.ip, keep_code=False)
            except (EmailUnavailable, TooManyAttempts):
                logger.warning("could not tell the previous address that the email changed")
        await self.auth.events.emit(
            "email_changed",
            user_id=user_id,
            session_id=session_id,
            ip=request.ip,
            user_agent=request.user_agent,
            reason=f"{ended} other session(s) ended",
        )
        await self._done(scope, send, ctx, form, body, {"changed": True})

    async def _link(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        user_id, _, request = self._request(ctx)
        provider_id = str_param(body, "provider")
        provider = self.auth.providers.get(provider_id)
        start = getattr(provider, "start", None)
        if provider is None or start is None:
            raise InvalidParams(f"{provider_id!r} is not a provider that can be linked")
        await self._limited(user_id, request)
        self._require_recent(ctx)
        params = {"redirectTo": body.get("redirectTo") or "/"}
        # The browser's own request facts: the flow cookie it sets binds the flow to this browser.
        flow_request = self._endpoints.sign_in_request(ctx)
        redirect = await start(
            self.auth.provider_context, params, flow_request, link_user_id=user_id
        )
        if not isinstance(redirect, Redirect):  # pragma: no cover - start always redirects
            raise InvalidParams("the provider did not start a flow")
        await self._endpoints.answer_redirect(send, ctx, flow_request, redirect, form)

    async def _unlink(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        user_id, session_id, request = self._request(ctx)
        provider = str_param(body, "provider")
        await self._limited(user_id, request)
        self._require_recent(ctx)
        accounts = await self.auth.accounts.for_user(user_id)
        mine = [a for a in accounts if a.provider == provider]
        if not mine:
            raise MethodNotLinked()
        if await self.auth.accounts.unlink(user_id, provider) == 0:
            raise LastSignInMethod()
        for account in mine:
            await self.auth.events.emit(
                "account_unlinked",
                user_id=user_id,
                session_id=session_id,
                provider=provider,
                identifier=account.provider_account_id,
                ip=request.ip,
                user_agent=request.user_agent,
            )
        await self._done(scope, send, ctx, form, body, {"unlinked": True})

    async def _delete(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        user_id, session_id, request = self._request(ctx)
        await self._limited(user_id, request)
        password = body.get("password")
        if isinstance(password, str) and password:
            await self._check_password(user_id, password, request)
        else:
            self._require_recent(ctx)
        hook = self.auth.before_delete_user
        if hook is not None:
            try:
                await hook(user_id)
            except AuthError:
                raise
            except Exception as exc:
                logger.exception("before_delete_user failed; the account is kept")
                refused = AccountError("before_delete_user failed", code="AccountDeletionRefused")
                refused.status = 409
                raise refused from exc
        await self.auth.delete_user(
            user_id,
            session_id=session_id,
            ip=request.ip,
            user_agent=request.user_agent,
            reason="deleted by the user",
        )
        ctx.clear_tokens(self.auth)
        await self._done(scope, send, ctx, form, body, {"deleted": True})
