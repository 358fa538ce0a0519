"""How the demo shows a session to a person: "Chrome on Linux · 203.0.113.7 · active 2 min ago".

Deliberately small: a handful of patterns covering the browsers and systems people use, and an
honest "Unknown browser" for the rest. (A real app might use a user-agent database.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from authbridge import SessionInfo

__all__ = ["Device", "describe_device", "describe_session", "time_ago"]

# Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari".
_BROWSERS = (
    ("Edge", re.compile(r"\bEdg(e|A|iOS)?/")),
    ("Opera", re.compile(r"\bOPR/|\bOpera\b")),
    ("Firefox", re.compile(r"\bFirefox/|\bFxiOS/")),
    ("Chrome", re.compile(r"\bChrome/|\bCriOS/|\bChromium/|HeadlessChrome/")),
    ("Safari", re.compile(r"\bSafari/")),
    ("curl", re.compile(r"^curl/")),
    ("Python", re.compile(r"python-httpx|python-requests|aiohttp", re.I)),
)
_SYSTEMS = (
    ("Android", re.compile(r"\bAndroid\b")),
    ("iOS", re.compile(r"\biPhone\b|\biPad\b|\biPod\b")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("macOS", re.compile(r"\bMac OS X\b|\bMacintosh\b")),
    ("ChromeOS", re.compile(r"\bCrOS\b")),
    ("Linux", re.compile(r"\bLinux\b|\bX11\b")),
)


@dataclass(frozen=True, slots=True)
class Device:
    """One row of the sessions list, ready for the template."""

    session_id: str
    label: str
    """"Chrome on Linux"."""
    ip: str | None
    last_active_at: datetime
    active: str
    """"active 2 min ago"."""
    current: bool
    user_agent: str | None


def describe_device(user_agent: str | None) -> str:
    """ "Chrome on Linux", "Safari on iOS", "Unknown browser" for an unrecognised agent."""
    if not user_agent:
        return "Unknown browser"
    browser = next((name for name, pattern in _BROWSERS if pattern.search(user_agent)), None)
    system = next((name for name, pattern in _SYSTEMS if pattern.search(user_agent)), None)
    if browser is None:
        return f"Unknown browser on {system}" if system else "Unknown browser"
    return f"{browser} on {system}" if system else browser


def time_ago(then: datetime, now: datetime) -> str:
    """ "just now", "2 min ago", "3 h ago", "5 days ago"."""
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    return "1 day ago" if days == 1 else f"{days} days ago"


def describe_session(
    session: SessionInfo, *, current_session_id: str | None, now: datetime
) -> Device:
    """The template's view of one session (the one making the request is "active now")."""
    current = session.session_id == current_session_id
    return Device(
        session_id=session.session_id,
        label=describe_device(session.user_agent),
        ip=session.created_ip,
        last_active_at=session.last_active_at,
        active="active now" if current else f"active {time_ago(session.last_active_at, now)}",
        current=current,
        user_agent=session.user_agent,
    )
