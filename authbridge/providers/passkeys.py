"""Passkeys (WebAuthn): register for the signed-in user, usernameless sign-in, list, remove.

Enable with ``AUTHBRIDGE_PASSKEYS=true`` (or ``PasskeyProvider()`` in ``providers``); needs
``authbridge[passkeys]`` (the ``webauthn`` package). The relying party id is ``SITE_URL``'s host
and the expected origin is ``SITE_URL``'s origin.

Browser: ``await authbridge.passkeys.register()`` (signed in) and ``await
authbridge.signIn("passkey")`` → ``{signedIn: true, ...}``; the client drives these routes:

* ``POST {prefix}/passkeys/register/options`` (signed in, recent sign-in) → ``{"publicKey":
  creation options JSON}``; ``POST {prefix}/passkeys/register`` ``{"credential", "name"?}`` →
  ``{"passkey": {"id", "name", "createdAt", "lastUsedAt"}}``.
* ``POST {prefix}/passkeys/signin/options`` → ``{"publicKey": request options JSON}`` (no
  ``allowCredentials``: the authenticator offers its discoverable credentials); then
  ``signIn("passkey", {"credential"})``.
* ``GET {prefix}/passkeys`` → ``{"passkeys": [...]}``; ``POST {prefix}/passkeys/remove``
  ``{"id"}`` (recent sign-in) → ``{"removed": true}``; every other session of the user ends.
* Auth events (:mod:`authbridge.events`): ``factor_added`` when a passkey is registered and
  ``factor_removed`` (``reason`` ``"N other session(s) ended"``) when one is removed, with
  ``provider`` ``passkey`` and ``identifier`` the passkey's ``id``; a refused request records
  nothing.

Each ceremony's challenge is random, stored server-side, bound to the browser (tab) by a
five-minute HttpOnly cookie naming it, and consumed by its first use. Options requests are rate
limited: each spends a token of the client's bucket (and for registration the user's), at most
``RateLimitConfig.ip_attempts`` (100) per ``period`` (an hour), refilled continuously; then
``TooManyAttempts`` (429, ``Retry-After``). User verification is
required by default; the sign counter must grow (when the authenticator keeps one). A
user-verified passkey sign-in is two factors (the device, and the PIN or biometric that unlocks
it): it is not held for TOTP. With ``user_verification=False`` an assertion without it is
accepted as one factor (``amr`` ``["hwk"]``), and a user with TOTP then answers its code like
after a password (``{"started": true, "factor": "totp"}``). Errors:
``InvalidCredentials`` (any failed sign-in: unknown or removed passkey, bad signature, no user
verification, stale counter, used or expired challenge), ``InvalidPasskey`` (a registration that
does not verify), ``PasskeyExists``, ``PasskeyNotFound``, ``Unauthenticated``,
``RecentAuthRequired``, ``TooManyAttempts``.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import webauthn
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..errors import (
    InvalidCredentials,
    InvalidParams,
    RecentAuthRequired,
    SignInError,
    Unauthenticated,
)
from ..ratelimit import Bucket, client_key
from ..store.passkeys import Passkey, PasskeyRepository
from .base import Page, ProviderContext, ProviderRoute, RouteRequest, SignedIn, SignInRequest

if TYPE_CHECKING:
    from ..events import EventKind

__all__ = ["CHALLENGE_COOKIE", "PasskeyProvider"]

logger = logging.getLogger("authbridge.passkeys")

CHALLENGE_COOKIE = "authbridge.webauthn"
"""Names the ceremony's challenge (``authbridge.webauthn.<tab>`` in ``per_tab`` mode)."""


def _json(payload: Mapping[str, Any], status: int = 200) -> Page:
    return Page(json.dumps(payload, separators=(",", ":")), status, content_type="application/json")


def _describe(passkey: Passkey) -> dict[str, Any]:
    return {
        "id": passkey.id,
        "name": passkey.name,
        "createdAt": passkey.created_at.isoformat(),
        "lastUsedAt": passkey.last_used_at.isoformat() if passkey.last_used_at else None,
    }


class PasskeyProvider:
    """WebAuthn passkeys (provider id ``passkey``), see the module docstring.

    Args:
        rp_name: the name shown by the authenticator (default: ``SITE_URL``'s host).
        user_verification: require user verification (PIN, biometrics); on by default. Off,
            a sign-in without it counts as one factor (held for a TOTP code when the user has
            one).
        recent_auth: how recent a sign-in adding or removing a passkey needs.
        challenge_for: how long a ceremony's challenge lives.
    """

    id = "passkey"

    def __init__(
        self,
        *,
        rp_name: str | None = None,
        user_verification: bool = True,
        recent_auth: timedelta = timedelta(minutes=10),
        challenge_for: timedelta = timedelta(minutes=5),
    ) -> None:
        self.rp_name = rp_name
        self.user_verification = user_verification
        self.recent_auth = recent_auth
        self.challenge_for = challenge_for

    def routes(self) -> Sequence[ProviderRoute]:
        """Registration, sign-in options, list and removal under ``{prefix}/passkeys``."""
        return (
            ProviderRoute("passkeys", ("GET",), self._list),
            ProviderRoute("passkeys/register/options", ("POST",), self._register_options),
            ProviderRoute("passkeys/register", ("POST",), self._register),
            ProviderRoute("passkeys/signin/options", ("POST",), self._sign_in_options),
            ProviderRoute("passkeys/remove", ("POST",), self._remove),
        )

    # -- relying party -----------------------------------------------------------------------

    @staticmethod
    def _rp(ctx: ProviderContext) -> tuple[str, str]:
        parts = urlsplit(ctx.config.site_url)
        return parts.hostname or "localhost", f"{parts.scheme}://{parts.netloc}"

    def _uv(self) -> UserVerificationRequirement:
        if self.user_verification:
            return UserVerificationRequirement.REQUIRED
        return UserVerificationRequirement.PREFERRED

    async def _new_challenge(
        self, ctx: ProviderContext, request: SignInRequest, purpose: str, user_id: str | None
    ) -> bytes:
        # Every options request stores a challenge: a client, and a signed-in user, may ask for
        # at most rate_limit.ip_attempts per period (like OAuth starts).
        limit = ctx.config.rate_limit.ip_attempts
        buckets = [Bucket(f"passkey-options:user:{user_id}", limit)] if user_id else []
        if request.ip:
            buckets.append(Bucket(f"passkey-options:ip:{client_key(request.ip)}", limit))
        async with ctx.limiter.attempt(keep=buckets) as attempt:
            attempt.succeed()
        challenge = secrets.token_bytes(32)
        now = ctx.clock()
        challenge_id = await _repo(ctx).add_challenge(
            purpose,
            bytes_to_base64url(challenge),
            user_id,
            now,
            now + self.challenge_for,
        )
        request.set_cookie(
            _cookie_name(request), challenge_id, max_age=int(self.challenge_for.total_seconds())
        )
        return challenge

    async def _take_challenge(
        self, ctx: ProviderContext, request: SignInRequest, purpose: str
    ) -> tuple[bytes, str | None] | None:
        name = _cookie_name(request)
        challenge_id = request.cookies.get(name)
        request.clear_cookie(name)
        if not challenge_id or len(challenge_id) > 64:
            return None
        taken = await _repo(ctx).take_challenge(challenge_id, purpose, ctx.clock())
        if taken is None:
            return None
        return base64url_to_bytes(taken.challenge), taken.user_id

    def _signed_in(self, ctx: ProviderContext, request: RouteRequest, *, recent: bool) -> str:
        user_id = request.sign_in.user_id
        if user_id is None:
            raise Unauthenticated("sign in first")
        if recent and not request.sign_in.recent(self.recent_auth, ctx.clock()):
            raise RecentAuthRequired(self.recent_auth, "sign in again to change passkeys")
        return user_id

    # -- registration ------------------------------------------------------------------------

    async def _register_options(self, ctx: ProviderContext, request: RouteRequest) -> Page:
        user_id = self._signed_in(ctx, request, recent=True)
        user = await ctx.users.get(user_id)
        rp_id, _ = self._rp(ctx)
        existing = await _repo(ctx).of_user(user_id)
        challenge = await self._new_challenge(ctx, request.sign_in, "register", user_id)
        name = (user.email if user is not None else None) or user_id
        options = webauthn.generate_registration_options(
            rp_id=rp_id,
            rp_name=self.rp_name or rp_id,
            user_name=name,
            user_id=user_id.encode("utf-8"),
            user_display_name=(user.name if user is not None else None) or name,
            challenge=challenge,
            timeout=int(self.challenge_for.total_seconds() * 1000),
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                require_resident_key=True,
                user_verification=self._uv(),
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
                for p in existing
            ],
        )
        return _json({"publicKey": json.loads(webauthn.options_to_json(options))})

    async def _register(self, ctx: ProviderContext, request: RouteRequest) -> Page:
        user_id = self._signed_in(ctx, request, recent=True)
        credential = request.body.get("credential")
        name = request.body.get("name")
        if not isinstance(credential, dict) or not (name is None or isinstance(name, str)):
            raise InvalidParams("credential must be an object")
        taken = await self._take_challenge(ctx, request.sign_in, "register")
        if taken is None or taken[1] != user_id:
            raise SignInError("the registration expired; try again", code="InvalidPasskey")
        rp_id, origin = self._rp(ctx)
        try:
            verified = webauthn.verify_registration_response(
                credential=credential,
                expected_challenge=taken[0],
                expected_rp_id=rp_id,
                expected_origin=origin,
                require_user_verification=self.user_verification,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            logger.info("passkey registration refused: %s", exc)
            raise SignInError("the passkey did not verify", code="InvalidPasskey") from exc
        transports = credential.get("response", {}).get("transports")
        passkey = await _repo(ctx).add(
            user_id=user_id,
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            name=(name or "Passkey")[:100],
            transports=",".join(t for t in transports if isinstance(t, str))[:200]
            if isinstance(transports, list)
            else None,
            backed_up=verified.credential_backed_up,
            now=ctx.clock(),
        )
        if passkey is None:
            raise SignInError("this passkey is already registered", code="PasskeyExists")
        await _record(ctx, "factor_added", request.sign_in, user_id, passkey.id)
        return _json({"passkey": _describe(passkey)})

    # -- sign-in -------------------------------------------------------------------------------

    async def _sign_in_options(self, ctx: ProviderContext, request: RouteRequest) -> Page:
        rp_id, _ = self._rp(ctx)
        challenge = await self._new_challenge(ctx, request.sign_in, "signin", None)
        options = webauthn.generate_authentication_options(
            rp_id=rp_id,
            challenge=challenge,
            timeout=int(self.challenge_for.total_seconds() * 1000),
            user_verification=self._uv(),
        )
        return _json({"publicKey": json.loads(webauthn.options_to_json(options))})

    async def sign_in(
        self, ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
    ) -> SignedIn:
        """Verify an assertion of a discoverable credential (``{"credential"}``).

        Raises:
            InvalidParams: no credential object.
            InvalidCredentials: the assertion does not verify (any reason).
            TooManyAttempts: too many failures from this client.
            StoreUnavailable: the database failed.
        """
        credential = params.get("credential")
        if not isinstance(credential, dict):
            raise InvalidParams("credential must be an object")
        async with ctx.limiter.attempt(refund=ctx.limiter.clients(request)) as attempt:
            taken = await self._take_challenge(ctx, request, "signin")
            raw_id = credential.get("rawId") or credential.get("id")
            passkey = (
                await _repo(ctx).by_credential(raw_id)
                if isinstance(raw_id, str) and len(raw_id) <= 1400
                else None
            )
            if taken is None or passkey is None:
                raise InvalidCredentials()
            handle = credential.get("response", {}).get("userHandle")
            if handle and _handle_user(handle) != passkey.user_id:
                raise InvalidCredentials()
            rp_id, origin = self._rp(ctx)
            try:
                verified = webauthn.verify_authentication_response(
                    credential=credential,
                    expected_challenge=taken[0],
                    expected_rp_id=rp_id,
                    expected_origin=origin,
                    credential_public_key=base64url_to_bytes(passkey.public_key),
                    credential_current_sign_count=passkey.sign_count,
                    require_user_verification=self.user_verification,
                )
            except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
                logger.info("passkey sign-in refused: %s", exc)
                raise InvalidCredentials() from exc
            if not await _repo(ctx).record_use(
                passkey.id, passkey.sign_count, verified.new_sign_count, ctx.clock()
            ):
                raise InvalidCredentials()  # a concurrent sign-in with a cloned counter
            attempt.succeed()
        amr = ("hwk", "user") if verified.user_verified else ("hwk",)
        return SignedIn(passkey.user_id, amr=amr)

    # -- management ----------------------------------------------------------------------------

    async def _list(self, ctx: ProviderContext, request: RouteRequest) -> Page:
        user_id = self._signed_in(ctx, request, recent=False)
        return _json({"passkeys": [_describe(p) for p in await _repo(ctx).of_user(user_id)]})

    async def _remove(self, ctx: ProviderContext, request: RouteRequest) -> Page:
        user_id = self._signed_in(ctx, request, recent=True)
        passkey_id = request.body.get("id")
        if not isinstance(passkey_id, str) or not passkey_id:
            raise InvalidParams("id must be a string")
        if not await _repo(ctx).remove(user_id, passkey_id):
            raise SignInError("no such passkey", code="PasskeyNotFound")
        # Like a password or email change: whoever else holds a session of this user (a stolen
        # one, say) is signed out when the owner removes a factor; this session stays.
        ended = await ctx.sessions.end_user_sessions(user_id, keep=request.sign_in.session_id)
        await _record(
            ctx,
            "factor_removed",
            request.sign_in,
            user_id,
            passkey_id,
            reason=f"{ended} other session(s) ended",
        )
        return _json({"removed": True})


async def _record(
    ctx: ProviderContext,
    kind: EventKind,
    request: SignInRequest,
    user_id: str,
    passkey_id: str,
    reason: str | None = None,
) -> None:
    """Record an event about one of the signed-in user's passkeys, from this request's
    session."""
    if ctx.events is not None:
        await ctx.events.emit(
            kind,
            user_id=user_id,
            session_id=request.session_id,
            ip=request.ip,
            user_agent=request.user_agent,
            provider=PasskeyProvider.id,
            identifier=passkey_id,
            reason=reason,
        )


def _handle_user(handle: Any) -> str | None:
    if not isinstance(handle, str) or len(handle) > 128:
        return None
    try:
        return base64url_to_bytes(handle).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def _cookie_name(request: SignInRequest) -> str:
    return f"{CHALLENGE_COOKIE}.{request.tab}" if request.tab else CHALLENGE_COOKIE


def _repo(ctx: ProviderContext) -> PasskeyRepository:
    if ctx.passkeys is None:  # pragma: no cover - Auth always provides it
        raise RuntimeError("the passkey provider needs ProviderContext.passkeys")
    return ctx.passkeys
