"""The SMTP and console senders against a real SMTP server, one that is down, one that hangs and
one that refuses the recipient; the packaged templates; the SMTP URL."""

from __future__ import annotations

import ipaddress
import logging
import ssl
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jinja2
import pytest
from aiosmtpd.controller import Controller

from authbridge import Auth, AuthConfig, ConfigError, EmailProvider, EmailUnavailable
from authbridge.config import EmailConfig
from authbridge.mail import ConsoleSender, MailMessage, MessageTemplates, SmtpSender, parse_smtp_url
from tests.toolkit.servers import free_port

from .smtp import Mailbox, SmtpServer, code_in, html_part, link_in

MESSAGE = MailMessage(
    to="ada@example.com",
    subject="Your sign-in code",
    text="Your code is:\n\n12345678\n\nhttps://example.com/x?token=a.b\n",
    html="<p><strong>12345678</strong></p>",
)


async def test_the_smtp_sender_delivers_a_text_and_html_message(smtp_server: SmtpServer) -> None:
    sender = SmtpSender.from_url(smtp_server.url, "Notes <no-reply@example.com>")
    await sender.send(MESSAGE)
    received = smtp_server.mailbox.last("ada@example.com")
    assert received["From"] == "Notes <no-reply@example.com>"
    assert received["Subject"] == "Your sign-in code"
    assert received["Message-ID"]
    assert code_in(received) == "12345678"
    assert link_in(received) == "https://example.com/x?token=a.b"
    assert "<strong>12345678</strong>" in html_part(received)


async def test_an_smtp_server_that_is_down_answers_email_unavailable_after_retries(
    down_smtp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sender = SmtpSender.from_url(down_smtp_url, "a@example.com", attempts=3, backoff=0.01)
    with pytest.raises(EmailUnavailable) as caught:
        await sender.send(MESSAGE)
    assert caught.value.status == 503
    assert sum("attempt" in r.getMessage() for r in caplog.records) == 3


async def test_a_hanging_smtp_server_is_bounded_by_the_timeout(silent_smtp_url: str) -> None:
    sender = SmtpSender.from_url(
        silent_smtp_url, "a@example.com", timeout=0.3, attempts=2, backoff=0.01
    )
    started = time.monotonic()
    with pytest.raises(EmailUnavailable):
        await sender.send(MESSAGE)
    assert time.monotonic() - started < 3.0


async def test_a_refused_recipient_is_email_unavailable_without_retrying(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_server.mailbox.refused.add("ada@example.com")
    sender = SmtpSender.from_url(smtp_server.url, "a@example.com", attempts=3, backoff=0.01)
    with pytest.raises(EmailUnavailable):
        await sender.send(MESSAGE)
    assert not any("attempt" in r.getMessage() for r in caplog.records)
    assert smtp_server.mailbox.messages == []


async def test_starttls_is_required_when_asked_for(smtp_server: SmtpServer) -> None:
    # aiosmtpd here offers no STARTTLS: sending in the clear instead would be a downgrade.
    sender = SmtpSender.from_url(smtp_server.url + "?starttls=true", "a@example.com", attempts=1)
    with pytest.raises(EmailUnavailable):
        await sender.send(MESSAGE)
    assert smtp_server.mailbox.messages == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com:25", ("mail.example.com", 25, None, None, False, False)),
        ("smtp://u%40x:p%3Aw@h:587?starttls=true", ("h", 587, "u@x", "p:w", False, True)),
        ("smtps://u:p@h", ("h", 465, "u", "p", True, False)),
    ],
)
def test_smtp_urls_are_parsed(url: str, expected: tuple[object, ...]) -> None:
    s = parse_smtp_url(url)
    assert (s.host, s.port, s.username, s.password, s.implicit_tls, s.starttls) == expected


@pytest.mark.parametrize(
    "url", ["http://h:25", "smtp://", "smtps://h:465?starttls=true", "smtp://h:99999"]
)
def test_bad_smtp_urls_fail_at_startup_without_echoing_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AuthConfig.from_env({"AUTHBRIDGE_SMTP_URL": url.replace("h", "u:secret@h", 1)})
    assert "AUTHBRIDGE_SMTP_URL" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_the_smtp_password_is_not_in_the_config_repr() -> None:
    config = AuthConfig.from_env({"AUTHBRIDGE_SMTP_URL": "smtp://u:hunter2@h:25"})
    assert "hunter2" not in repr(config)


async def test_the_console_sender_logs_the_code_and_link_at_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sender = ConsoleSender()
    with caplog.at_level(logging.WARNING, "authbridge.mail"):
        await sender.send(MESSAGE)
    (record,) = [r for r in caplog.records if r.name == "authbridge.mail"]
    assert record.levelno == logging.WARNING
    assert "12345678" in record.getMessage()
    assert "https://example.com/x?token=a.b" in record.getMessage()


async def test_the_console_sender_is_refused_with_a_server_database_unless_chosen(
    pg_url: str,
) -> None:
    from authbridge.tokens import generate_private_key_pem

    base = AuthConfig(database_url=pg_url, jwt_private_keys=(generate_private_key_pem("ES256"),))
    auth = Auth(base, providers=[EmailProvider()], create_tables=True)
    with pytest.raises(ConfigError, match="AUTHBRIDGE_SMTP_URL"):
        await auth.open()
    await auth.close()
    chosen = Auth(
        base.replace(email=EmailConfig(console=True)),
        providers=[EmailProvider()],
        create_tables=True,
    )
    await chosen.open()
    assert isinstance(chosen.email.mailer, ConsoleSender)
    await chosen.close()


def test_messages_put_the_code_and_the_link_on_lines_of_their_own() -> None:
    templates = MessageTemplates()
    for purpose in ("signin", "reset", "verify"):
        message = templates.render(
            purpose,
            "ada@example.com",
            {
                "code": "01234567",
                "link": "https://example.com/l?token=t",
                "email": "ada@example.com",
                "minutes": 15,
                "site_url": "https://example.com",
            },
        )
        lines = message.text.splitlines()
        assert "01234567" in lines
        assert "https://example.com/l?token=t" in lines
        assert 'href="https://example.com/l?token=t"' in message.html


VARS = {"code": "", "link": "https://x", "email": "a<b>@example.com", "minutes": 1, "site_url": ""}


def test_an_app_can_override_a_template_and_the_html_is_escaped() -> None:
    loader = jinja2.DictLoader(
        {
            "email/signin.txt": "Hello {{ email }}\n{{ code }}\n{{ link }}\n",
            "email/signin.subject.txt": "Sign in to Notes",
        }
    )
    message = MessageTemplates(loader).render(
        "signin",
        "a<b>@example.com",
        {**VARS, "code": "1"},
    )
    assert message.subject == "Sign in to Notes"
    assert message.text.startswith("Hello a<b>@example.com\n")
    notice = MessageTemplates(loader).render(
        "reset-unknown",
        "a<b>@example.com",
        VARS,
    )
    assert "a&lt;b&gt;@example.com" in notice.html
    assert "<b>" not in notice.html


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and a client
    context that trusts exactly that certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


@pytest.mark.parametrize("mode", ["smtps", "starttls"])
async def test_tls_delivery_with_implicit_tls_and_starttls(tmp_path: Path, mode: str) -> None:
    server_context, client_context = _self_signed(tmp_path)
    mailbox = Mailbox()
    port = free_port()
    if mode == "smtps":
        controller = Controller(
            mailbox, hostname="127.0.0.1", port=port, ssl_context=server_context
        )
        url = f"smtps://127.0.0.1:{port}"
    else:
        controller = Controller(
            mailbox,
            hostname="127.0.0.1",
            port=port,
            tls_context=server_context,
            require_starttls=True,
        )
        url = f"smtp://127.0.0.1:{port}?starttls=true"
    controller.start()
    try:
        sender = SmtpSender.from_url(url, "a@example.com", tls_context=client_context)
        await sender.send(MESSAGE)
        assert code_in(mailbox.last("ada@example.com")) == "12345678"
        untrusted = SmtpSender.from_url(url, "a@example.com", attempts=1)
        with pytest.raises(EmailUnavailable):
            await untrusted.send(MESSAGE)  # an unknown certificate is refused
    finally:
        controller.stop()
