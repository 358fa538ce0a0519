"""Provider ``email`` (Convex's ``Email`` / ``ResendOTP``): sign in with a code or magic link.

::

    {"email": "a@example.com", "redirectTo": "/notes"}  -> {"started": true}  (a code + a link)
    {"email": "a@example.com", "code": "12345678"}     -> signed in (a new address: a new user)
    {"token": "<from the magic link>"}                 -> signed in (the link's confirm page)

``started`` is answered whether or not the address has an account, after the same work (a new
address becomes a user when its code is used). The provider owns ``{prefix}/email/confirm``, the
magic link's page.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from ..errors import InvalidParams
from ..otp import CONFIRM_ROUTE, code_delivery, text_param
from ..ratelimit import Bucket, client_key
from ..routing import safe_redirect_path
from ..store.codes import VerifiedCode
from ..store.verified import Contact
from .base import (
    Outcome,
    Page,
    ProviderContext,
    ProviderRoute,
    RouteRequest,
    SignedIn,
    SignInRequest,
    Started,
    normalize_email,
)

__all__ = ["EmailProvider", "claim_contact", "confirm_page", "use_code", "use_link"]

logger = logging.getLogger("authbridge.providers.email")


_CONFIRM_PAGES: dict[str, dict[str, Any]] = {
    "signin": {
        "provider": "email",
        "flow": None,
        "title": "Signing you in…",
        "button": "Sign in",
        "needs_password": False,
    },
    "verify": {
        "provider": "password",
        "flow": "email-verification",
        "title": "Verifying your email…",
        "button": "Verify my email",
        "needs_password": False,
    },
    "reset": {
        "provider": "password",
        "flow": "reset-verification",
        "title": "Choose a new password",
        "button": "Set password and sign in",
        "needs_password": True,
    },
}
"""What a magic link's page does, by the purpose of its code."""


async def confirm_page(ctx: ProviderContext, request: RouteRequest) -> Page:
    """``GET {prefix}/email/confirm?token=...``: a magic link's page. It consumes nothing: its
    form (submitted by script, or by one click without JavaScript) POSTs the token to
    ``{prefix}/signin``, so a mail scanner's GET cannot use the link; the link works in any
    browser. The token is in the page's URL, so the page sends no Referer to other sites.

    Raises:
        StoreUnavailable: the database failed.
    """
    delivery = code_delivery(ctx)
    token = request.query.get("token", "")
    row = await delivery.repository.find_link(token, _CONFIRM_PAGES)
    nonce = secrets.token_urlsafe(16)
    error = request.query.get("error", "")
    variables: dict[str, Any] = {
        "action": f"{ctx.config.route_prefix}/signin",
        "token": token,
        "redirect_to": safe_redirect_path(request.query.get("redirectTo"), "/"),
        "nonce": nonce,
        "sign_in_path": ctx.config.sign_in_path,
        "error": error if error.isalpha() and len(error) <= 64 else None,
        "invalid": row is None,
    }
    if row is not None:
        variables.update(_CONFIRM_PAGES[row.purpose])
    return Page(
        delivery.templates.page("confirm", variables),
        status=400 if row is None else 200,
        headers=(
            (
                "content-security-policy",
                f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            ("referrer-policy", "same-origin"),
            ("x-frame-options", "DENY"),
        ),
    )


async def use_code(
    ctx: ProviderContext,
    request: SignInRequest,
    purposes: Collection[str],
    identifier: str,
    code: str,
) -> VerifiedCode:
    """Consume the live code of ``identifier`` for one of ``purposes``. Besides the code's own
    tries, every wrong code spends a token of the client's bucket (``EmailConfig.
    ip_code_attempts`` per ``RateLimitConfig.period``, whatever the address); a right one gives
    it back.

    Raises:
        InvalidCode: wrong, used, replaced or expired.
        TooManyAttempts: the code's tries are spent, or this client sent too many wrong codes.
        StoreUnavailable: the database failed.
    """
    repository = code_delivery(ctx).repository
    return await _limited(ctx, request, lambda: repository.verify_code(purposes, identifier, code))


async def use_link(
    ctx: ProviderContext, request: SignInRequest, token: str, purposes: Collection[str]
) -> VerifiedCode:
    """Consume the code whose magic link carries ``token``; limited like :func:`use_code`.

    Raises:
        InvalidCode: malformed, wrong, used, replaced or expired.
        TooManyAttempts: the code's tries are spent, or this client sent too many wrong codes.
        StoreUnavailable: the database failed.
    """
    repository = code_delivery(ctx).repository
    return await _limited(ctx, request, lambda: repository.verify_link(token, purposes))


async def _limited(
    ctx: ProviderContext, request: SignInRequest, check: Callable[[], Awaitable[VerifiedCode]]
) -> VerifiedCode:
    buckets = (
        [Bucket(f"code-ip:{client_key(request.ip)}", ctx.config.email.ip_code_attempts)]
        if request.ip
        else []
    )
    async with ctx.limiter.attempt(refund=buckets) as attempt:
        used = await check()
        attempt.succeed()
    return used


async def claim_contact(ctx: ProviderContext, kind: Contact, value: str, provider: str) -> SignedIn:
    """Sign in the owner of a just-verified address. If it belonged to a user nobody had
    verified (someone may have signed up with another person's address: a pre-account
    takeover), that user's password was cleared and their sessions end now."""
    user_id, claimed = await code_delivery(ctx).contacts.ensure_contact_user(
        kind, value, provider, ctx.clock()
    )
    if claimed:
        logger.info("an unverified %s was verified by code; its other sessions end", kind)
        await ctx.sessions.end_user_sessions(user_id)
    return SignedIn(user_id)


class EmailProvider:
    """Sign in with a code or magic link sent by email (see the module docstring). A new
    address becomes a user with a verified email when its code is used. Owns the magic link's
    page, ``{prefix}/email/confirm``."""

    id = "email"

    def routes(self) -> Sequence[ProviderRoute]:
        """The magic link's confirmation page (GET only: it consumes nothing)."""
        return (ProviderRoute(CONFIRM_ROUTE, ("GET",), confirm_page),)

    async def sign_in(
        self, ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
    ) -> Outcome:
        """Send a code + link, or sign in with one.

        Raises:
            InvalidParams, InvalidEmail: malformed params.
            InvalidCode: wrong, used, replaced or expired code / link.
            TooManyAttempts: too many sends, the code's wrong-try budget is spent, or too many
                wrong codes from this client.
            EmailUnavailable: the message could not be sent (no code kept).
            StoreUnavailable: the database failed.
        """
        delivery = code_delivery(ctx)
        token = text_param(params, "token")
        if token is not None:
            used = await use_link(ctx, request, token, {"signin"})
            return await claim_contact(ctx, "email", used.identifier, self.id)
        raw = text_param(params, "email")
        if raw is None:
            raise InvalidParams("email is required")
        email = normalize_email(raw)
        code = text_param(params, "code")
        if code is None:
            await delivery.send_email(
                "signin", email, ip=request.ip, redirect_to=text_param(params, "redirectTo")
            )
            return Started()
        used = await use_code(ctx, request, {"signin"}, email, code)
        return await claim_contact(ctx, "email", used.identifier, self.id)
