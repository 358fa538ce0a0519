"""Delivering one-time codes: the :class:`EmailSender` and :class:`SmsSender` seams, an SMTP
sender (aiosmtplib, the ``authbridge[email]`` extra), a console sender for development, and the
Jinja2 templates messages are rendered from.

``AUTHBRIDGE_SMTP_URL`` picks the SMTP server::

    smtp://[user:pass@]host:port              plain SMTP (port 25 / 587)
    smtp://user:pass@host:587?starttls=true   upgrade with STARTTLS (required, not opportunistic)
    smtps://user:pass@host:465                implicit TLS

A sender raises :class:`~authbridge.errors.EmailUnavailable` when a message could not be handed
over; callers then keep no code that was never delivered (no usable half-state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import jinja2

from .errors import ConfigError, EmailUnavailable

__all__ = [
    "ConsoleSender",
    "EmailSender",
    "MailMessage",
    "MessageTemplates",
    "SmsSender",
    "SmtpSender",
    "SmtpSettings",
    "parse_smtp_url",
]

logger = logging.getLogger("authbridge.mail")


@dataclass(frozen=True, slots=True)
class MailMessage:
    """One message to one recipient: a plain-text part and an HTML alternative."""

    to: str
    subject: str
    text: str
    html: str


class EmailSender(Protocol):
    """Hands messages to a mail system."""

    async def send(self, message: MailMessage) -> None:
        """Deliver ``message`` (or queue it with something that will).

        Raises:
            EmailUnavailable: it could not be handed over; nothing was sent.
        """
        ...


class SmsSender(Protocol):
    """Sends a text message to a phone number (E.164). authbridge ships no gateway: wrap your
    provider's API (Twilio, Vonage, AWS SNS, ...) in a class with this method."""

    async def send_sms(self, to: str, text: str) -> None:
        """Deliver ``text`` to ``to``.

        Raises:
            EmailUnavailable: the gateway refused or could not be reached (same 503 contract).
        """
        ...


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to reach the SMTP server (parsed from ``AUTHBRIDGE_SMTP_URL``)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    implicit_tls: bool = False
    """``smtps://``: TLS from the first byte (port 465)."""
    starttls: bool = False
    """``?starttls=true``: upgrade a plain connection; failing to upgrade is an error."""


def parse_smtp_url(url: str) -> SmtpSettings:
    """Parse ``smtp://[user:pass@]host:port[?starttls=true]`` or ``smtps://...``.

    Raises:
        ConfigError: not such a URL (the message never contains the password).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError("AUTHBRIDGE_SMTP_URL is not a valid smtp:// or smtps:// URL") from exc
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError("AUTHBRIDGE_SMTP_URL must look like smtp://[user:pass@]host:port")
    query = dict(parse_qsl(parts.query))
    starttls = query.get("starttls", "false").lower() in ("1", "true", "yes")
    implicit = parts.scheme == "smtps"
    if implicit and starttls:
        raise ConfigError("AUTHBRIDGE_SMTP_URL: smtps:// already uses TLS; drop ?starttls=true")
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if implicit else 587 if starttls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit,
        starttls=starttls,
    )


def _build(message: MailMessage, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("> ") or None)
    email.set_content(message.text)
    email.add_alternative(message.html, subtype="html")
    return email


class SmtpSender:
    """Sends over SMTP with aiosmtplib: a bounded timeout per attempt, a few attempts with
    exponential backoff for transient failures, none for permanent refusals (5xx).

    Args:
        settings: the server (see :func:`parse_smtp_url`).
        sender: the ``From`` address (``AUTHBRIDGE_EMAIL_FROM``).
        timeout: seconds per connection attempt and per SMTP command.
        attempts: how many times to try a transient failure.
        backoff: seconds before the second attempt; doubles after each.
        tls_context: custom TLS settings (e.g. a private CA in tests).
    """

    def __init__(
        self,
        settings: SmtpSettings,
        sender: str,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 0.5,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if attempts < 1 or timeout <= 0 or backoff < 0:
            raise ConfigError("SMTP sender: need attempts >= 1, timeout > 0, backoff >= 0")
        self.settings = settings
        self.sender = sender
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._tls_context = tls_context

    @classmethod
    def from_url(cls, url: str, sender: str, **options: Any) -> SmtpSender:
        """Build a sender from an ``AUTHBRIDGE_SMTP_URL`` value.

        Raises:
            ConfigError: the URL is invalid or aiosmtplib is not installed.
        """
        return cls(parse_smtp_url(url), sender, **options)

    async def send(self, message: MailMessage) -> None:
        """Hand ``message`` to the SMTP server.

        Raises:
            EmailUnavailable: the server is down, too slow, or refused the message/recipient.
        """
        try:
            import aiosmtplib
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ConfigError(
                "the SMTP sender needs aiosmtplib: pip install authbridge[email]"
            ) from exc
        email = _build(message, self.sender)
        s = self.settings
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                # wait_for bounds the whole exchange, not only each read (a server can trickle).
                await asyncio.wait_for(
                    aiosmtplib.send(
                        email,
                        hostname=s.host,
                        port=s.port,
                        username=s.username,
                        password=s.password,
                        use_tls=s.implicit_tls,
                        start_tls=s.starttls,
                        timeout=self._timeout,
                        tls_context=self._tls_context,
                    ),
                    timeout=self._timeout * 3,
                )
                return
            except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPSenderRefused) as exc:
                logger.warning(
                    "SMTP server refused the message (%s); not retrying", type(exc).__name__
                )
                raise EmailUnavailable("the mail server refused the message") from exc
            except aiosmtplib.SMTPResponseException as exc:
                if 500 <= exc.code < 600:
                    logger.warning("SMTP permanent failure %d; not retrying", exc.code)
                    raise EmailUnavailable("the mail server refused the message") from exc
                failure: BaseException = exc
            except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
                failure = exc
            logger.warning(
                "SMTP delivery attempt %d/%d to %s:%d failed: %s",
                attempt,
                self._attempts,
                s.host,
                s.port,
                type(failure).__name__,
            )
            if attempt < self._attempts:
                await asyncio.sleep(delay)
                delay *= 2
        raise EmailUnavailable("the mail server could not be reached")


class ConsoleSender:
    """Development only: logs each message (text part, with its code and link) at WARNING on the
    ``authbridge.mail`` logger instead of sending it. Also keeps the last messages in
    :attr:`outbox` (bounded) for scripts and demos."""

    def __init__(self, keep: int = 50) -> None:
        self.outbox: list[MailMessage] = []
        self._keep = keep

    async def send(self, message: MailMessage) -> None:
        """Log ``message``. Never raises."""
        logger.warning(
            "authbridge console mail (development only; set AUTHBRIDGE_SMTP_URL to send)\n"
            "To: %s\nSubject: %s\n\n%s",
            message.to,
            message.subject,
            message.text,
        )
        self.outbox.append(message)
        del self.outbox[: -self._keep]


DEFAULT_SUBJECTS: Mapping[str, str] = {
    "signin": "Your sign-in code",
    "reset": "Reset your password",
    "reset-unknown": "Password reset requested",
    "verify": "Verify your email address",
}
"""Subjects by purpose; templates may override them with a ``{% block subject %}``-free
``<purpose>.subject.txt`` file."""


class MessageTemplates:
    """Renders messages from Jinja2 templates ``email/<purpose>.txt`` and ``email/<purpose>.html``
    (and optionally ``email/<purpose>.subject.txt``). An app overrides any of them by passing a
    loader that has the same names; the packaged templates fill the gaps.

    Purposes: ``signin`` (email code + magic link), ``reset`` (password reset code + link),
    ``reset-unknown`` (someone asked to reset the password of an address without an account),
    ``verify`` (email verification code + link). Variables: ``code``, ``link``, ``email``,
    ``minutes`` (lifetime), ``site_url``.
    """

    def __init__(self, loader: jinja2.BaseLoader | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = [loader] if loader is not None else []
        loaders.append(jinja2.PackageLoader("authbridge", "templates"))
        self._text = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=False,  # noqa: S701 - plain-text parts; HTML parts use _html below
            keep_trailing_newline=True,
            undefined=jinja2.StrictUndefined,
        )
        self._html = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def render(self, purpose: str, to: str, variables: Mapping[str, Any]) -> MailMessage:
        """Build the message for ``purpose``.

        Raises:
            jinja2.TemplateError: a template is missing or broken (a bug in the app's templates).
        """
        context = dict(variables)
        subject = DEFAULT_SUBJECTS.get(purpose, "Your code")
        with contextlib.suppress(jinja2.TemplateNotFound):
            subject = self._text.get_template(f"email/{purpose}.subject.txt").render(context)
        return MailMessage(
            to=to,
            subject=" ".join(subject.split()),
            text=self._text.get_template(f"email/{purpose}.txt").render(context),
            html=self._html.get_template(f"email/{purpose}.html").render(context),
        )

    def page(self, name: str, variables: Mapping[str, Any]) -> str:
        """Render an HTML page template (``pages/<name>.html``), autoescaped."""
        return self._html.get_template(f"pages/{name}.html").render(dict(variables))
