"""Email + password (Convex's ``Password`` provider): ``flow`` = ``"signIn"`` or ``"signUp"``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import AccountExists, InvalidCredentials, InvalidParams, InvalidPassword
from ..passwords import normalize_password
from .base import SignedIn, email_bucket_name, normalize_email, str_param

if TYPE_CHECKING:
    from .base import Outcome, ProviderContext, ProviderRoute, SignInRequest

__all__ = ["PasswordProvider"]


class PasswordProvider:
    """Email + password, with ``flow`` = ``"signIn"`` or ``"signUp"`` (Convex's ``Password``),
    plus the email flows ``reset``, ``reset-verification`` and ``email-verification``
    (:mod:`authbridge.providers.password_email`)."""

    id = "password"

    def routes(self) -> Sequence[ProviderRoute]:
        """No routes of its own."""
        return ()

    async def sign_in(
        self, ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
    ) -> Outcome:
        """Sign in or sign up.

        Raises:
            InvalidParams: missing/mistyped fields or an unknown flow.
            InvalidEmail, InvalidPassword: sign-up input breaks the rules.
            AccountExists: sign-up for a taken email.
            InvalidCredentials: sign-in with an unknown email or a wrong password.
            InvalidCode: a wrong, used or expired code (email flows).
            TooManyAttempts: a rate limit is exhausted.
            EmailUnavailable: a code could not be sent (email flows, verification).
            StoreUnavailable: the database failed.
        """
        from . import password_email

        flow = params.get("flow")
        if isinstance(flow, str) and flow in password_email.EMAIL_FLOWS:
            return await password_email.EMAIL_FLOWS[flow](ctx, params, request)
        email_raw = str_param(params, "email")
        password = str_param(params, "password")
        if flow == "signIn":
            outcome = await self._sign_in(ctx, email_raw, password, request)
            return await password_email.after_password_sign_in(
                ctx, outcome, email_raw.strip().lower(), request
            )
        if flow == "signUp":
            outcome = await self._sign_up(ctx, email_raw, password, request)
            return await password_email.after_sign_up(
                ctx, outcome, email_raw.strip().lower(), request
            )
        raise InvalidParams(
            "params.flow must be one of signIn, signUp, reset, reset-verification, "
            "email-verification"
        )

    async def _sign_in(
        self, ctx: ProviderContext, email_raw: str, password: str, request: SignInRequest
    ) -> Outcome:
        email = email_bucket_name(email_raw)
        account_bucket = ctx.limiter.account(self.id, email, request)
        async with ctx.limiter.attempt(
            reset=[account_bucket], refund=ctx.limiter.clients(request)
        ) as attempt:
            account = await ctx.accounts.find(self.id, email)
            try:
                candidate = normalize_password(
                    password, dataclasses.replace(ctx.config.password, min_length=0)
                )
            except InvalidPassword:
                candidate = None
            if account is None or account.secret is None or candidate is None:
                await ctx.hasher.dummy_verify(candidate or "")
                raise InvalidCredentials()
            result = await ctx.hasher.verify(account.secret, candidate)
            if not result.ok:
                raise InvalidCredentials()
            if result.needs_rehash:
                await ctx.accounts.set_secret(account.id, await ctx.hasher.hash(candidate))
            attempt.succeed()
        request.remember_device(self.id, email)
        return SignedIn(account.user_id)

    async def _sign_up(
        self, ctx: ProviderContext, email_raw: str, password: str, request: SignInRequest
    ) -> Outcome:
        email = normalize_email(email_raw)
        normalized = normalize_password(password, ctx.config.password)
        async with ctx.limiter.attempt(
            refund=ctx.limiter.clients(request),
            keep=ctx.limiter.sign_ups(request),
            # Failed sign-in guesses at this address before it existed do not lock out its owner.
            forget=[ctx.limiter.account(self.id, email, request)],
        ) as attempt:
            if await ctx.accounts.exists(self.id, email):
                raise AccountExists()
            secret = await ctx.hasher.hash(normalized)
            user_id = await ctx.users.create_with_account(
                now=ctx.clock(),
                email=email,
                provider=self.id,
                provider_account_id=email,
                secret=secret,
            )
            attempt.succeed()
        request.remember_device(self.id, email)
        return SignedIn(user_id, new_user=True)
