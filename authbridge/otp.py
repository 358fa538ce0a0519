"""One-time codes and magic links: delivery (:class:`CodeDelivery`) and the ``email`` and
``phone`` providers.

Provider ``email`` (Convex's ``Email`` / ``ResendOTP``)::

    {"email": "a@example.com", "redirectTo": "/notes"}  -> {"started": true}  (a code + a link)
    {"email": "a@example.com", "code": "12345678"}     -> signed in (a new address: a new user)
    {"token": "<from the magic link>"}                 -> signed in (the link's confirm page)

Provider ``phone`` (behind an :class:`~authbridge.mail.SmsSender`)::

    {"phone": "+15551234567"}                  -> {"started": true}
    {"phone": "+15551234567", "code": "..."}   -> signed in; sets ``phone_verified_at``

``started`` is answered whether or not the address has an account, after the same work (a new
address becomes a user when its code is used). Sending is limited per address (one per
``resend_interval``, ``sends_per_hour``) and per client IP.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .config import AuthConfig
from .errors import EmailUnavailable, InvalidParams, TooManyAttempts
from .mail import ConsoleSender, EmailSender, MessageTemplates, SmsSender, SmtpSender
from .providers import (
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
from .ratelimit import client_key
from .routing import safe_redirect_path
from .store.codes import VerificationCodes
from .store.dialect import is_sqlite
from .store.rate_limits import RateLimitRepository
from .store.verified import Contact, ContactRepository

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "CodeDelivery",
    "EmailProvider",
    "PhoneProvider",
    "code_delivery",
    "normalize_phone",
    "resolve_mailer",
]

logger = logging.getLogger("authbridge.otp")

CONFIRM_ROUTE = "email/confirm"
"""The magic link's page, under the route prefix."""
_PHONE_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")


def normalize_phone(phone: str) -> str:
    """E.164 form of ``phone`` (spaces, dots, dashes and parentheses removed).

    Raises:
        InvalidParams: not an international number like ``+15551234567``.
    """
    compact = re.sub(r"[\s().-]", "", phone)
    if not _PHONE_RE.match(compact):
        raise InvalidParams("phone must be an international number like +15551234567")
    return compact


def resolve_mailer(config: AuthConfig, explicit: EmailSender | None = None) -> EmailSender | None:
    """The sender the configuration asks for: ``explicit``, else SMTP when
    ``AUTHBRIDGE_SMTP_URL`` is set, else the console sender on SQLite or when
    ``AUTHBRIDGE_EMAIL_CONSOLE=true``, else ``None`` (a server database without a way to send).
    """
    if explicit is not None:
        return explicit
    email = config.email
    if email.smtp_url is not None:
        return SmtpSender.from_url(
            email.smtp_url,
            email.sender,
            timeout=email.smtp_timeout.total_seconds(),
            attempts=email.smtp_attempts,
        )
    if email.console or is_sqlite(config.database_url):
        return ConsoleSender()
    return None


def code_delivery(ctx: ProviderContext) -> CodeDelivery:
    """``ctx.codes``, checked.

    Raises:
        EmailUnavailable: the engine has no code delivery (a context built by hand).
    """
    if not isinstance(ctx.codes, CodeDelivery):
        raise EmailUnavailable("no code delivery in this provider context")
    return ctx.codes


def text_param(params: Mapping[str, Any], name: str) -> str | None:
    """An optional string param (``None`` when absent or empty).

    Raises:
        InvalidParams: present but not a string, or over 2 KiB.
    """
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise InvalidParams(f"{name} must be a string")
    return value


class CodeDelivery:
    """Creates, sends and stores one-time codes; shared by every code-based flow.

    Args:
        store: the database.
        config: settings (``config.email`` above all).
        clock: the time source.
        mailer: where email goes (``None``: sending answers ``EmailUnavailable``).
        templates: message and page templates (the app's overrides first).
    """

    def __init__(
        self,
        store: Store,
        config: AuthConfig,
        clock: Any,
        mailer: EmailSender | None,
        templates: MessageTemplates,
    ) -> None:
        email = config.email
        self.config = config
        self.mailer = mailer
        self.templates = templates
        self._clock = clock
        self.repository = VerificationCodes(
            store,
            clock,
            lifetime=email.code_lifetime,
            attempts=email.code_attempts,
            resend_interval=email.resend_interval,
        )
        """The ``auth_verification_codes`` table."""
        self.contacts = ContactRepository(store)
        """Users by email / phone, verification marks, password replacement."""
        self._next = RateLimitRepository(store, max(email.resend_interval, timedelta(seconds=1)))
        self._hourly = RateLimitRepository(store, timedelta(hours=1))

    def confirm_link(self, token: str, redirect_to: str | None = None) -> str:
        """The absolute URL of the magic link's confirmation page."""
        query = {"token": token}
        target = safe_redirect_path(redirect_to)
        if target is not None:
            query["redirectTo"] = target
        base = self.config.site_url.rstrip("/") + self.config.route_prefix
        return f"{base}/{CONFIRM_ROUTE}?{urlencode(query)}"

    async def _throttle(self, key: str, ip: str | None) -> tuple[str, list[str]]:
        email = self.config.email
        now = self._clock()
        next_send = f"send-next:{key}"
        hourly = [(f"send:{key}", email.sends_per_hour)]
        if ip:
            hourly.append((f"send-ip:{client_key(ip)}", email.ip_sends_per_hour))
        if email.resend_interval > timedelta(0):
            await self._next.take([(next_send, 1)], now)
        try:
            await self._hourly.take(hourly, now)
        except TooManyAttempts:
            await self._refund(next_send, [])
            raise
        return next_send, [name for name, _ in hourly]

    async def _refund(self, next_send: str, hourly: Sequence[str]) -> None:
        # The message never left: its sends do not count.
        await self._hourly.settle([next_send], hourly)

    async def send_email(
        self,
        purpose: str,
        email: str,
        *,
        ip: str | None,
        user_id: str | None = None,
        redirect_to: str | None = None,
        template: str | None = None,
        keep_code: bool = True,
    ) -> None:
        """Send a code + link for ``purpose`` to ``email`` and store it (replacing the previous
        one) once the message is handed over. ``keep_code=False`` sends ``template`` as a notice
        and stores nothing.

        Raises:
            TooManyAttempts: the address or the client asked too often (``retry_after``).
            EmailUnavailable: the message could not be handed over; no code was kept.
            StoreUnavailable: the database failed.
        """
        next_send, hourly = await self._throttle(f"email:{email}", ip)
        row_id, code, secret = self.repository.new_code()
        link = (
            self.confirm_link(f"{row_id}.{secret}", redirect_to)
            if keep_code
            else self.config.site_url
        )
        message = self.templates.render(
            template or purpose,
            email,
            {
                "code": code,
                "link": link,
                "email": email,
                "minutes": int(self.repository.lifetime.total_seconds() // 60),
                "site_url": self.config.site_url,
            },
        )
        try:
            if self.mailer is None:
                logger.error(
                    "no email sender: set AUTHBRIDGE_SMTP_URL (or AUTHBRIDGE_EMAIL_CONSOLE=true "
                    "for development)"
                )
                raise EmailUnavailable("no email sender is configured")
            await self.mailer.send(message)
        except EmailUnavailable:
            await self._refund(next_send, hourly)
            raise
        if keep_code:
            await self.repository.save(purpose, email, row_id, code, secret, user_id=user_id)

    async def send_sms(self, sender: SmsSender, phone: str, *, ip: str | None) -> None:
        """Send a sign-in code to ``phone`` and store it once handed over.

        Raises:
            TooManyAttempts: the number or the client asked too often.
            EmailUnavailable: the gateway failed; no code was kept.
            StoreUnavailable: the database failed.
        """
        next_send, hourly = await self._throttle(f"phone:{phone}", ip)
        row_id, code, _ = self.repository.new_code()
        minutes = int(self.repository.lifetime.total_seconds() // 60)
        try:
            await sender.send_sms(
                phone, f"{code} is your sign-in code. It expires in {minutes} minutes."
            )
        except EmailUnavailable:
            await self._refund(next_send, hourly)
            raise
        await self.repository.save("phone-signin", phone, row_id, code, None)


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


async def _claim(ctx: ProviderContext, kind: Contact, value: str, provider: str) -> SignedIn:
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
            TooManyAttempts: too many sends, or the code's wrong-try budget is spent.
            EmailUnavailable: the message could not be sent (no code kept).
            StoreUnavailable: the database failed.
        """
        delivery = code_delivery(ctx)
        token = text_param(params, "token")
        if token is not None:
            used = await delivery.repository.verify_link(token, {"signin"})
            return await _claim(ctx, "email", used.identifier, self.id)
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
        used = await delivery.repository.verify_code({"signin"}, email, code)
        return await _claim(ctx, "email", used.identifier, self.id)


class PhoneProvider:
    """Sign in with a code sent by SMS through ``sender`` (no gateway ships with authbridge).

    Args:
        sender: the :class:`~authbridge.mail.SmsSender` that reaches your gateway.
    """

    id = "phone"

    def __init__(self, sender: SmsSender) -> None:
        self.sender = sender

    def routes(self) -> Sequence[ProviderRoute]:
        """No routes of its own."""
        return ()

    async def sign_in(
        self, ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
    ) -> Outcome:
        """Send a code, or sign in with one (sets ``phone_verified_at``).

        Raises:
            InvalidParams: malformed params or phone number.
            InvalidCode: wrong, used, replaced or expired code.
            TooManyAttempts: too many sends, or the code's wrong-try budget is spent.
            EmailUnavailable: the SMS gateway failed (no code kept).
            StoreUnavailable: the database failed.
        """
        delivery = code_delivery(ctx)
        raw = text_param(params, "phone")
        if raw is None:
            raise InvalidParams("phone is required")
        phone = normalize_phone(raw)
        code = text_param(params, "code")
        if code is None:
            await delivery.send_sms(self.sender, phone, ip=request.ip)
            return Started()
        used = await delivery.repository.verify_code({"phone-signin"}, phone, code)
        return await _claim(ctx, "phone", used.identifier, self.id)
