"""TOTP second factor (RFC 6238, authenticator apps) with single-use recovery codes.

Enable it with ``AUTHBRIDGE_TOTP=true`` (or ``Auth(providers=[PasswordProvider(),
TotpProvider()])``); needs ``authbridge[totp]`` (``pyotp``, ``segno`` for the QR code).

* Enrolment (signed in, recent sign-in): ``POST {prefix}/totp/enroll`` → ``{"secret", "uri",
  "qrSvg"}`` (an ``otpauth://`` URI and its QR code as inline SVG); ``POST {prefix}/totp/confirm``
  ``{"code"}`` → ``{"enabled": true, "recoveryCodes": [10 codes]}`` (shown once; stored hashed).
  An enrolment not confirmed within an hour is void (``TotpNotEnabled``; ``Auth.cleanup``
  deletes it): enrol again.
* Sign-in: once confirmed, a password, email, SMS or OAuth sign-in (or a passkey's without user
  verification; one with it is two factors already) answers ``{"started": true,
  "factor": "totp"}`` (an OAuth callback sends the browser to the sign-in page with
  ``?factor=totp``) and remembers the pending sign-in in a signed, HttpOnly, five-minute cookie
  (one per tab in ``per_tab`` mode); ``signIn("totp", {"code"})`` or ``signIn("totp",
  {"recoveryCode"})`` then signs in (``amr`` gains ``"totp"`` or ``"recovery"``, and ``"mfa"``).
* A time step is accepted once (compare-and-set on ``auth_totp.last_step``); codes of the previous
  and next step are accepted for clock drift. Wrong codes draw on the account's bucket of failed
  attempts (10 per hour) and the client's.
* ``GET {prefix}/totp`` → ``{"enabled", "pending", "recoveryCodesLeft"}``; ``POST
  {prefix}/totp/recovery-codes`` (recent sign-in) → ten new codes; ``POST {prefix}/totp/disable``
  (recent sign-in) → ``{"enabled": false}``; every other session of the user ends.
* Auth events (:mod:`authbridge.events`): ``factor_added`` with ``provider`` ``totp`` when an
  enrolment is confirmed and ``recovery_codes`` when new codes replace the old ones;
  ``factor_removed`` (``totp``, ``reason`` ``"N other session(s) ended"``) when a confirmed secret
  is disabled. Never the secret or a code; a refused request records nothing.

Errors: ``InvalidCode`` (wrong, replayed or expired step; unknown or used recovery code; no
pending sign-in), ``TooManyAttempts``, ``RecentAuthRequired``, ``Unauthenticated``,
``TotpAlreadyEnabled``, ``TotpNotEnabled``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._sealing import SecretSealer
from ..errors import InvalidParams, RecentAuthRequired, SignInError, Unauthenticated
from ..store.factors import FactorRepository
from .base import (
    Page,
    ProviderContext,
    ProviderRoute,
    RouteRequest,
    SignedIn,
    SignInRequest,
    Started,
)

if TYPE_CHECKING:
    from ..events import EventKind

__all__ = [
    "PENDING_COOKIE",
    "RECOVERY_CODE_COUNT",
    "SECOND_FACTOR_AFTER",
    "TotpProvider",
    "recovery_code_hash",
]

PENDING_COOKIE = "authbridge.mfa"
"""The pending sign-in's cookie (``authbridge.mfa.<tab>`` in ``per_tab`` mode)."""

SECOND_FACTOR_AFTER = frozenset({"pwd", "otp", "sms", "oauth"})
"""First factors (``amr`` values) after which an enrolled user must give a TOTP code:
passwords, emailed/texted codes and OAuth / OpenID sign-ins (including the sign-in that links
an identity). A passkey sign-in is held back only without user verification (``hwk`` without
``user``, possible with ``PasskeyProvider(user_verification=False)``): with it, the passkey is
already two factors (the device, and the PIN or biometric that unlocks it)."""

RECOVERY_CODE_COUNT = 10
STEP_SECONDS = 30
DIGITS = 6
_CODE_RE = re.compile(r"^[0-9]{6}$")
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
_RECOVERY_RE = re.compile(r"^[a-z0-9]{16}$")


def _needs_code(amr: Sequence[str]) -> bool:
    # Not after a second factor (mfa) nor a user-verified passkey (hwk + user); yes after a
    # passkey without user verification and after the first factors of SECOND_FACTOR_AFTER.
    if "mfa" in amr:
        return False
    if "hwk" in amr:
        return "user" not in amr
    return not SECOND_FACTOR_AFTER.isdisjoint(amr)


def recovery_code_hash(code: str) -> str:
    """The stored form of a recovery code (normalised: lower case, no dashes or spaces)."""
    normalized = code.replace("-", "").replace(" ", "").strip().lower()
    return hashlib.sha256(b"authbridge-recovery:" + normalized.encode("utf-8")).hexdigest()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))  # ~79 bits
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(payload: Mapping[str, Any], status: int = 200) -> Page:
    return Page(json.dumps(payload, separators=(",", ":")), status, content_type="application/json")


class TotpProvider:
    """TOTP as a second factor (provider id ``totp``), see the module docstring.

    Args:
        issuer: the name authenticator apps show (default: ``SITE_URL``'s host).
        recent_auth: how recent a sign-in enrolling, disabling or renewing codes needs.
        pending_for: how long a password sign-in waits for its TOTP code.
    """

    id = "totp"

    def __init__(
        self,
        *,
        issuer: str | None = None,
        recent_auth: timedelta = timedelta(minutes=10),
        pending_for: timedelta = timedelta(minutes=5),
    ) -> None:
        import pyotp  # the extra is needed; fail when the provider is built, not at sign-in

        self._pyotp = pyotp
        self.issuer = issuer
        self.recent_auth = recent_auth
        self.pending_for = pending_for

    def routes(self) -> Sequence[ProviderRoute]:
        """Enrolment and management routes under ``{prefix}/totp``."""
        return (
            ProviderRoute("totp", ("GET",), self._status),
            ProviderRoute("totp/enroll", ("POST",), self._enroll),
            ProviderRoute("totp/confirm", ("POST",), self._confirm),
            ProviderRoute("totp/disable", ("POST",), self._disable),
            ProviderRoute("totp/recovery-codes", ("POST",), self._renew_codes),
        )

    # -- sign-in ---------------------------------------------------------------------------------

    async def second_factor(
        self, ctx: ProviderContext, outcome: SignedIn, request: SignInRequest
    ) -> Started | None:
        """Hold back a sign-in of a user with a confirmed TOTP secret when it was one factor:
        password, email, SMS, OAuth, or a passkey without user verification.

        Raises:
            StoreUnavailable: the database failed.
        """
        if not _needs_code(outcome.amr):
            return None
        row = await _factors(ctx).totp(outcome.user_id)
        if row is None or row.confirmed_at is None:
            return None
        expires = int((ctx.clock() + self.pending_for).timestamp())
        payload = _b64(
            json.dumps(
                {
                    "u": outcome.user_id,
                    "m": list(outcome.amr),
                    "e": expires,
                    "r": outcome.redirect_to,
                },
                separators=(",", ":"),
            ).encode("utf-8")
        )
        value = f"{payload}.{_sign(_keys(ctx, 'totp-pending')[0], payload)}"
        request.set_cookie(
            _cookie_name(request), value, max_age=int(self.pending_for.total_seconds())
        )
        return Started(factor="totp")

    async def sign_in(
        self, ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
    ) -> SignedIn:
        """Complete a pending sign-in with ``{"code"}`` or ``{"recoveryCode"}``.

        Raises:
            InvalidParams: neither a code nor a recovery code.
            SignInError: ``InvalidCode`` (wrong or replayed code, used recovery code, no or
                expired pending sign-in).
            TooManyAttempts: too many wrong codes.
            StoreUnavailable: the database failed.
        """
        code, recovery = params.get("code"), params.get("recoveryCode")
        if not isinstance(code, str) and not isinstance(recovery, str):
            raise InvalidParams("code or recoveryCode must be a string")
        pending = self._read_pending(ctx, request)
        if pending is None:
            async with ctx.limiter.attempt(keep=ctx.limiter.clients(request)):
                raise _invalid_code()
        user_id: str = pending["u"]
        bucket = ctx.limiter.account(self.id, user_id, request)
        async with ctx.limiter.attempt(
            reset=[bucket], refund=ctx.limiter.clients(request)
        ) as attempt:
            if isinstance(code, str):
                if not await self._check_code(ctx, user_id, code):
                    raise _invalid_code()
                method = "totp"
            else:
                assert isinstance(recovery, str)
                if len(recovery) > 64 or not await _factors(ctx).use_recovery_code(
                    user_id, recovery_code_hash(recovery), ctx.clock()
                ):
                    raise _invalid_code()
                method = "recovery"
            attempt.succeed()
        request.clear_cookie(_cookie_name(request))
        first = tuple(m for m in pending["m"] if isinstance(m, str))
        redirect = pending.get("r")
        return SignedIn(
            user_id,
            redirect_to=redirect if isinstance(redirect, str) else None,
            amr=(*first, method, "mfa"),
        )

    def _read_pending(self, ctx: ProviderContext, request: SignInRequest) -> dict[str, Any] | None:
        value = request.cookies.get(_cookie_name(request))
        if not value or value.count(".") != 1 or len(value) > 2048:
            return None
        payload, signature = value.split(".")
        if not any(
            hmac.compare_digest(signature, _sign(k, payload)) for k in _keys(ctx, "totp-pending")
        ):
            return None
        try:
            data = json.loads(_unb64(payload))
        except ValueError:
            return None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("u"), str)
            or not isinstance(data.get("m"), list)
            or not isinstance(data.get("e"), int)
            or data["e"] <= ctx.clock().timestamp()
        ):
            return None
        return data

    async def _check_code(self, ctx: ProviderContext, user_id: str, code: str) -> bool:
        """Accept ``code`` for the user's confirmed secret (each time step once)."""
        row = await _factors(ctx).totp(user_id)
        if row is None or row.confirmed_at is None:
            return False
        step = self._matching_step(ctx, user_id, row.sealed_secret, code)
        if step is None:
            return False
        return await _factors(ctx).use_step(user_id, step)

    def _matching_step(
        self, ctx: ProviderContext, user_id: str, sealed: str, code: str
    ) -> int | None:
        code = code.replace(" ", "")
        secret = _sealer(ctx).open(user_id, sealed)
        if secret is None or not _CODE_RE.match(code):
            return None
        totp = self._pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
        now_step = int(ctx.clock().timestamp()) // STEP_SECONDS
        found: int | None = None
        for step in (now_step - 1, now_step, now_step + 1):  # clock drift of one step
            if hmac.compare_digest(totp.generate_otp(step), code):
                found = step
        return found

    # -- routes ----------------------------------------------------------------------------------

    def _signed_in(self, request: RouteRequest, *, recent: bool, ctx: ProviderContext) -> str:
        user_id = request.sign_in.user_id
        if user_id is None:
            raise Unauthenticated("sign in first")
        if recent and not request.sign_in.recent(self.recent_auth, ctx.clock()):
            raise RecentAuthRequired(self.recent_auth, "sign in again to change second factors")
        return user_id

    async def _status(self, ctx: ProviderContext, request: RouteRequest) -> Page:
        user_id = self._signed_in(request, recent=False, ctx=ctx)
        row = await _factors(ctx).totp(user_id)
        enabled = row is not None and row.confirmed_at is not None
        left = await _factors(ctx).recovery_codes_left(user_id) if enabled else 0
        return _json(
            {
                "enabled": enabled,
                "pending": row is not None and not enabled and not row.stale(ctx.clock()),
                "recoveryCodesLeft": left,
            }
        )

    async def _enroll(self, ctx: ProviderContext, request: RouteRequest) -> Page:
        user_id = self._signed_in(request, recent=True, ctx=ctx)
        secret = self._pyotp.random_base32()  # 160 bits
        if not await _factors(ctx).begin_totp(
            user_id, _sealer(ctx).seal(user_id, secret), ctx.clock()
        ):
            raise SignInError("TOTP is already enabled", code="TotpAlreadyEnabled")
        user = await ctx.users.get(user_id)
        label = (user.email if user is not None else None) or user_id
        issuer = self.issuer or urlsplit(ctx.config.site_url).hostname or "authbridge"
        uri = self._pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
            name=label, issuer_name=issuer
        )
        return _json({"secret": secret, "uri": uri, "qrSvg": qr_svg(uri)})

    async def _confirm(self, ctx: ProviderContext, request: RouteRequest) -> Page:
        user_id = self._signed_in(request, recent=True, ctx=ctx)
        code = request.body.get("code")
        if not isinstance(code, str):
            raise InvalidParams("code must be a string")
        bucket = ctx.limiter.account(self.id, user_id, request.sign_in)
        async with ctx.limiter.attempt(
            reset=[bucket], refund=ctx.limiter.clients(request.sign_in)
        ) as attempt:
            row = await _factors(ctx).totp(user_id)
            if row is None or row.confirmed_at is not None or row.stale(ctx.clock()):
                raise SignInError("no TOTP enrolment to confirm", code="TotpNotEnabled")
            step = self._matching_step(ctx, user_id, row.sealed_secret, code)
            if step is None:
                raise _invalid_code()
            codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
            hashes = [recovery_code_hash(c) for c in codes]
            if not await _factors(ctx).confirm_totp(user_id, step, ctx.clock(), hashes):
                raise SignInError("no TOTP enrolment to confirm", code="TotpNotEnabled")
            attempt.succeed()
            await _record(ctx, "factor_added", request.sign_in, user_id, provider=self.id)
        return _json({"enabled": True, "recoveryCodes": codes})

    async def _disable(self, ctx: ProviderContext, request: RouteRequest) -> Page:
        user_id = self._signed_in(request, recent=True, ctx=ctx)
        row = await _factors(ctx).totp(user_id)
        if not await _factors(ctx).disable_totp(user_id):
            raise SignInError("TOTP is not enabled", code="TotpNotEnabled")
        # Like a password or email change: whoever else holds a session of this user (a stolen
        # one, say) is signed out when the owner removes a factor; this session stays.
        ended = await ctx.sessions.end_user_sessions(user_id, keep=request.sign_in.session_id)
        if row is not None and row.confirmed_at is not None:  # not an enrolment never confirmed
            await _record(
                ctx,
                "factor_removed",
                request.sign_in,
                user_id,
                provider=self.id,
                reason=f"{ended} other session(s) ended",
            )
        return _json({"enabled": False})

    async def _renew_codes(self, ctx: ProviderContext, request: RouteRequest) -> Page:
        user_id = self._signed_in(request, recent=True, ctx=ctx)
        row = await _factors(ctx).totp(user_id)
        if row is None or row.confirmed_at is None:
            raise SignInError("TOTP is not enabled", code="TotpNotEnabled")
        codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
        await _factors(ctx).replace_recovery_codes(
            user_id, [recovery_code_hash(c) for c in codes], ctx.clock()
        )
        await _record(ctx, "factor_added", request.sign_in, user_id, provider="recovery_codes")
        return _json({"recoveryCodes": codes})


def qr_svg(text: str) -> str:
    """``text`` as a QR code, inline SVG (no size attributes beyond the viewBox; black on
    white)."""
    import segno

    qr = segno.make(text, error="m")
    svg: str = qr.svg_inline(scale=4, dark="#000", light="#fff", title="TOTP QR code")
    return svg


async def _record(
    ctx: ProviderContext,
    kind: EventKind,
    request: SignInRequest,
    user_id: str,
    **fields: str | None,
) -> None:
    """Record an event about the signed-in user's factors, from this request's session."""
    if ctx.events is not None:
        await ctx.events.emit(
            kind,
            user_id=user_id,
            session_id=request.session_id,
            ip=request.ip,
            user_agent=request.user_agent,
            **fields,
        )


def _invalid_code() -> SignInError:
    return SignInError("wrong, used or expired code", code="InvalidCode")


def _cookie_name(request: SignInRequest) -> str:
    return f"{PENDING_COOKIE}.{request.tab}" if request.tab else PENDING_COOKIE


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())


def _keys(ctx: ProviderContext, purpose: str) -> list[bytes]:
    if ctx.derive_secrets is None:  # pragma: no cover - Auth always provides it
        raise RuntimeError("the TOTP provider needs ProviderContext.derive_secrets")
    return ctx.derive_secrets(purpose)


def _sealer(ctx: ProviderContext) -> SecretSealer:
    # SecretSealer seals with the last material: oldest first, so the newest key seals.
    return SecretSealer(list(reversed(_keys(ctx, "totp-secret"))))


def _factors(ctx: ProviderContext) -> FactorRepository:
    if ctx.factors is None:  # pragma: no cover - Auth always provides it
        raise RuntimeError("the TOTP provider needs ProviderContext.factors")
    return ctx.factors
