"""The password provider's email flows (Convex's ``reset``, ``reset-verification`` and
``email-verification``) and sign-up verification (``AUTHBRIDGE_EMAIL_VERIFICATION``).

Wire formats, as ``params`` of provider ``password``::

    {"flow": "reset", "email"}                                  -> {"started": true}
    {"flow": "reset-verification", "email", "code", "newPassword"}
        -> password replaced, every other session of the user ended, signed in
    {"flow": "email-verification", "email", "code"}             -> email verified, signed in

The magic link of a message carries ``{"token"}`` in place of ``email`` + ``code``.
``email_verified_at`` is only ever set by a code or link that was sent to that address.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from ..errors import EmailUnavailable, InvalidCode, InvalidParams, TooManyAttempts
from ..otp import code_delivery, text_param
from ..passwords import normalize_password
from ..store.codes import VerifiedCode
from .base import (
    Outcome,
    ProviderContext,
    SignedIn,
    SignInRequest,
    Started,
    normalize_email,
)
from .email import use_code, use_link

__all__ = [
    "EMAIL_FLOWS",
    "after_password_sign_in",
    "after_sign_up",
    "finish_reset",
    "start_reset",
    "verify_email",
]

logger = logging.getLogger("authbridge.password")

RESET = "reset"
VERIFY = "verify"


async def _use_code(
    ctx: ProviderContext, params: Mapping[str, Any], purpose: str, request: SignInRequest
) -> VerifiedCode:
    token = text_param(params, "token")
    if token is not None:
        used = await use_link(ctx, request, token, {purpose})
    else:
        email, code = text_param(params, "email"), text_param(params, "code")
        if email is None or code is None:
            raise InvalidParams("email and code are required")
        used = await use_code(ctx, request, {purpose}, normalize_email(email), code)
    if used.user_id is None:  # pragma: no cover - these purposes always record the user
        raise InvalidCode()
    return used


async def start_reset(
    ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
) -> Outcome:
    """Send a reset code + link (or, for an address without a password account, a notice
    saying so): the answer is ``started`` either way.

    Raises:
        InvalidParams, InvalidEmail: malformed params.
        TooManyAttempts: too many messages for the address or client.
        EmailUnavailable: the message could not be sent.
        StoreUnavailable: the database failed.
    """
    delivery = code_delivery(ctx)
    raw = text_param(params, "email")
    if raw is None:
        raise InvalidParams("email is required")
    email = normalize_email(raw)
    account = await delivery.contacts.password_account(email)
    if account is None:
        await delivery.send_email(
            RESET, email, ip=request.ip, template="reset-unknown", keep_code=False
        )
    else:
        await delivery.send_email(RESET, email, ip=request.ip, user_id=account[0])
    return Started()


async def finish_reset(
    ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
) -> Outcome:
    """Use a reset code (or link) and replace the password; every session of the user ends
    (the new session starts after).

    Raises:
        InvalidParams: malformed params.
        InvalidPassword: ``newPassword`` breaks the policy (checked before the code is used).
        InvalidCode, TooManyAttempts: the code is wrong / spent (or too many wrong codes from
            this client).
        StoreUnavailable: the database failed.
    """
    new_password = text_param(params, "newPassword")
    if new_password is None:
        raise InvalidParams("newPassword is required")
    normalized = normalize_password(new_password, ctx.config.password)
    used = await _use_code(ctx, params, RESET, request)
    user_id = str(used.user_id)
    secret = await ctx.hasher.hash(normalized)
    contacts = code_delivery(ctx).contacts
    if not await contacts.replace_password(user_id, used.identifier, secret, ctx.clock()):
        raise InvalidCode()
    await ctx.sessions.end_user_sessions(user_id)
    # The password is new: earlier failed guesses no longer lock its owner out.
    async with ctx.limiter.attempt(
        forget=[ctx.limiter.account("password", used.identifier, request)]
    ) as attempt:
        attempt.succeed()
    return SignedIn(user_id)


async def verify_email(
    ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
) -> Outcome:
    """Use a verification code (or link): sets ``email_verified_at`` and signs in.

    Raises:
        InvalidParams: malformed params.
        InvalidCode, TooManyAttempts: the code is wrong / spent (or too many wrong codes from
            this client).
        StoreUnavailable: the database failed.
    """
    used = await _use_code(ctx, params, VERIFY, request)
    user_id = str(used.user_id)
    await code_delivery(ctx).contacts.mark_verified("email", user_id, ctx.clock())
    return SignedIn(user_id)


EMAIL_FLOWS = {
    "reset": start_reset,
    "reset-verification": finish_reset,
    "email-verification": verify_email,
}
"""The password provider's email flows, by ``flow``."""


async def after_sign_up(
    ctx: ProviderContext, outcome: Outcome, email: str, request: SignInRequest
) -> Outcome:
    """Apply ``AUTHBRIDGE_EMAIL_VERIFICATION`` to a new password account.

    ``off``: signed in. ``optional``: signed in, and a verification code is sent (a failure to
    send is logged, not fatal). ``required``: a code is sent and the answer is ``started``; if it
    cannot be sent the new account is removed again, so signing up can simply be retried.

    Raises:
        EmailUnavailable: ``required`` and the message could not be sent.
        TooManyAttempts: ``required`` and the address or client asked too often.
        StoreUnavailable: the database failed.
    """
    mode = ctx.config.email.verification
    if mode == "off" or not isinstance(outcome, SignedIn):
        return outcome
    delivery = code_delivery(ctx)
    user_id = outcome.user_id
    if mode == "optional":
        try:
            await delivery.send_email(VERIFY, email, ip=request.ip, user_id=user_id)
        except (EmailUnavailable, TooManyAttempts) as exc:
            logger.warning("verification email after sign-up not sent: %s", exc.code)
        return outcome
    try:
        await delivery.send_email(VERIFY, email, ip=request.ip, user_id=user_id)
    except (EmailUnavailable, TooManyAttempts):
        await delivery.contacts.delete_user(user_id)
        raise
    return Started()


async def after_password_sign_in(
    ctx: ProviderContext, outcome: Outcome, email: str, request: SignInRequest
) -> Outcome:
    """With ``required`` verification, a correct password for an unverified address sends a
    new code and answers ``started`` instead of signing in.

    Raises:
        EmailUnavailable: the message could not be sent.
        StoreUnavailable: the database failed.
    """
    if ctx.config.email.verification != "required" or not isinstance(outcome, SignedIn):
        return outcome
    delivery = code_delivery(ctx)
    account = await delivery.contacts.password_account(email)
    if account is None or account[1]:
        return outcome
    with contextlib.suppress(TooManyAttempts):  # a code sent moments ago is still live
        await delivery.send_email(VERIFY, email, ip=request.ip, user_id=outcome.user_id)
    return Started()
