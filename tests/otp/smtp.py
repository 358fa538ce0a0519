"""A real SMTP server for tests (aiosmtpd) and helpers that read codes and links out of the
messages it received (parsed with the standard ``email`` package). Used by the email suites and
the browser tests."""

from __future__ import annotations

import contextlib
import email
import email.policy
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller

from tests.toolkit.servers import free_port

_CODE_LINE = re.compile(r"\d{8}")
_LINK_LINE = re.compile(r"https?://\S+")


@dataclass
class Mailbox:
    """What the SMTP server received; ``refuse`` makes it answer 550 for an address."""

    messages: list[EmailMessage] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refused:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append(parsed)
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        """Messages addressed to ``address``, oldest first."""
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def last(self, address: str) -> EmailMessage:
        """The newest message to ``address`` (fails the test if there is none)."""
        found = self.to(address)
        assert found, f"no message to {address}"
        return found[-1]

    def wait(self, address: str, count: int = 1, timeout: float = 10.0) -> EmailMessage:
        """Block (bounded) until ``count`` messages reached ``address``; the newest one."""
        deadline = time.monotonic() + timeout
        while len(self.to(address)) < count:
            assert time.monotonic() < deadline, f"no message {count} to {address}"
            time.sleep(0.05)
        return self.last(address)


@dataclass
class SmtpServer:
    """A running aiosmtpd: its ``smtp://`` URL and mailbox."""

    url: str
    mailbox: Mailbox


@contextlib.contextmanager
def running_smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 (its own thread and loop) for the block."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield SmtpServer(f"smtp://127.0.0.1:{port}", mailbox)
    finally:
        controller.stop()


def text_part(message: EmailMessage) -> str:
    """The plain-text body."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_part(message: EmailMessage) -> str:
    """The HTML body."""
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def code_in(message: EmailMessage) -> str:
    """The 8-digit code: a line of its own in the text part."""
    found = [line for line in text_part(message).splitlines() if _CODE_LINE.fullmatch(line)]
    assert len(found) == 1, text_part(message)
    return str(found[0])


def link_in(message: EmailMessage) -> str:
    """The link: a line of its own in the text part."""
    found = [line for line in text_part(message).splitlines() if _LINK_LINE.fullmatch(line)]
    assert len(found) == 1, text_part(message)
    return str(found[0])


def token_in(message: EmailMessage) -> str:
    """The magic link's token."""
    return parse_qs(urlsplit(link_in(message)).query)["token"][0]
