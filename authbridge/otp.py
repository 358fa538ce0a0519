"""Delivering one-time codes and magic links: :class:`CodeDelivery` throttles sending per address
and per client IP, renders messages, hands them to the :class:`~authbridge.mail.EmailSender` (or an
:class:`~authbridge.mail.SmsSender`) and stores the code's hash only once the message left. Shared
by the ``email`` and ``phone`` providers and the password provider's email flows; providers reach
it as ``ctx.codes``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .config import AuthConfig
from .errors import EmailUnavailable, InvalidParams, TooManyAttempts
from .mail import ConsoleSender, EmailSender, MessageTemplates, SmsSender, SmtpSender
from .providers.base import (
    ProviderContext,
)
from .ratelimit import client_key
from .routing import safe_redirect_path
from .store.codes import VerificationCodes
from .store.dialect import is_sqlite
from .store.rate_limits import RateLimitRepository
from .store.verified import ContactRepository

if TYPE_CHECKING:
    from .store import Store

__all__ = ["CONFIRM_ROUTE", "CodeDelivery", "code_delivery", "resolve_mailer", "text_param"]

logger = logging.getLogger("authbridge.otp")

CONFIRM_ROUTE = "email/confirm"
"""The magic link's page, under the route prefix."""


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
        clock: Callable[[], datetime],
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
