"""The one place that parses ``Cookie`` and writes ``Set-Cookie``.

Cookie names: ``authbridge.jwt`` and ``authbridge.refresh`` (``per_tab``: one pair per tab slot,
``authbridge.jwt.<tab>``), prefixed ``__Host-`` and marked ``Secure`` except on plain-http
localhost and test hosts (:func:`is_development_host`). Auth cookies are
``HttpOnly; SameSite=Lax; Path=/``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .config import AuthConfig

__all__ = [
    "HINT_COOKIE",
    "TAB_RE",
    "TEST_CLIENT_HOSTS",
    "CookieNames",
    "OriginFacts",
    "clear_cookie",
    "cookie_max_age",
    "cookie_names",
    "is_development_host",
    "is_loopback_host",
    "origin_facts",
    "parse_cookies",
    "set_cookie",
]

JWT_COOKIE = "authbridge.jwt"
REFRESH_COOKIE = "authbridge.refresh"
TABS_COOKIE = "authbridge.tabs"
HINT_COOKIE = "authbridge.tab"
"""``per_tab``: short-lived, script-set cookie naming the tab that starts a navigation."""

TAB_RE = re.compile(r"^[A-Za-z0-9_-]{6,40}$")
"""A valid tab id (``per_tab``): anything else in a cookie name or header is not ours."""

MAX_COOKIE_HEADER = 16 * 1024
_TOKEN_SAFE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
TEST_CLIENT_HOSTS = frozenset({"testserver", "testserver.local", "test"})
"""The hosts of Starlette's, Django's and Litestar's test clients (and ``http://test`` of
FastAPI's async examples; any ``*.test`` name too, reserved for testing by RFC 6761): like
localhost they get plain cookies over http, so a test over ``http://testserver`` keeps its
session."""


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.1`` and ``[::1]`` (with or without a port)."""
    host = host.lower()  # host names are case-insensitive
    if host.startswith("["):
        return host.split("]", 1)[0] + "]" in _LOOPBACK
    return host.rsplit(":", 1)[0] in _LOOPBACK


def is_development_host(host: str) -> bool:
    """Loopback or a test client's host (:data:`TEST_CLIENT_HOSTS`), with or without a port:
    plain-http requests to these get cookies without ``Secure``/``__Host-``."""
    if is_loopback_host(host):
        return True
    name = host.lower().rsplit(":", 1)[0]
    return name in TEST_CLIENT_HOSTS or name.endswith(".test")


def parse_cookies(header: bytes | None) -> dict[str, str]:
    """Parse a Cookie header. Never raises: malformed pairs are skipped, the first of duplicate
    names wins (browsers send the most specific cookie first), oversized headers are ignored.

    Browsers repeat the same header on every request, so results are memoised (bounded); the
    returned dict is shared and must not be modified."""
    if not header or len(header) > MAX_COOKIE_HEADER:
        return {}
    cached = _PARSED.get(header)
    if cached is not None:
        return cached
    if len(_PARSED) >= _PARSED_LIMIT:
        _PARSED.clear()  # bounded: Cookie headers are client-controlled
    cookies = _PARSED[header] = _parse(header)
    return cookies


_PARSED: dict[bytes, dict[str, str]] = {}
_PARSED_LIMIT = 1024


def _parse(header: bytes) -> dict[str, str]:
    text = header.decode("latin-1")
    cookies: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        name = name.strip()
        if name and name not in cookies:
            cookies[name] = value.strip().strip('"')
    return cookies


@dataclass(frozen=True, slots=True)
class CookieNames:
    """The cookie names for one request: secure (``__Host-``) or local-development ones."""

    secure: bool
    jwt: str
    refresh: str
    tabs: str
    tab: str | None

    def for_tab(self, tab: str | None) -> CookieNames:
        """The names of another tab's slot (``None``: the browser-wide slot)."""
        return cookie_names(self.secure, tab)


@functools.lru_cache(maxsize=512)
def cookie_names(secure: bool, tab: str | None = None) -> CookieNames:
    """Cookie names for a secure or local request, and a tab slot (``per_tab``); cached, since
    every request needs them."""
    prefix = "__Host-" if secure else ""
    suffix = f".{tab}" if tab else ""
    return CookieNames(
        secure,
        f"{prefix}{JWT_COOKIE}{suffix}",
        f"{prefix}{REFRESH_COOKIE}{suffix}",
        f"{prefix}{TABS_COOKIE}",
        tab,
    )


class OriginFacts(NamedTuple):
    """What the scheme and ``Host`` of a request imply."""

    secure: bool
    """Use ``__Host-`` names and ``Secure``: an https site, or a host that is not loopback."""
    origin: str
    """The request's own origin, ``scheme://host``."""
    names: CookieNames
    """The browser-wide slot's cookie names."""


_ORIGINS: dict[tuple[str, bytes, bool], OriginFacts] = {}
_ORIGINS_LIMIT = 256


def origin_facts(
    scheme: str, raw_host: bytes, scope: Mapping[str, Any], https_site: bool
) -> OriginFacts:
    """The facts for a scheme + ``Host``, memoised (bounded).

    ``https_site``: the configured ``site_url`` is https, so cookies are secure whatever the
    ``Host`` header says (a TLS-terminating proxy may forward ``Host: 127.0.0.1``). Only an
    http site on a loopback or test host gets plain names, for local development and tests.
    """
    key = (scheme, raw_host, https_site)
    facts = _ORIGINS.get(key)
    if facts is not None:
        return facts
    host = raw_host.decode("latin-1")
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "localhost"
    web_scheme = "https" if scheme in ("https", "wss") else "http"
    # Browsers send Origin lower-case and without a default port; some proxies add ":443".
    host = host.lower()
    default_port = ":443" if web_scheme == "https" else ":80"
    if host.endswith(default_port):
        host = host[: -len(default_port)]
    secure = https_site or web_scheme == "https" or not is_development_host(host)
    facts = OriginFacts(secure, f"{web_scheme}://{host}", cookie_names(secure))
    if len(_ORIGINS) >= _ORIGINS_LIMIT:
        _ORIGINS.clear()  # bounded: Host is client-controlled
    if raw_host:
        _ORIGINS[key] = facts
    return facts


def set_cookie(
    name: str,
    value: str,
    *,
    secure: bool,
    max_age: int | None,
    http_only: bool = True,
    same_site: str = "Lax",
) -> tuple[bytes, bytes]:
    """A ``Set-Cookie`` header for ASGI. ``max_age=None`` makes a browser-session cookie.

    Raises:
        ValueError: the value contains characters a cookie cannot carry.
    """
    if not _TOKEN_SAFE.match(value):
        raise ValueError("cookie value contains forbidden characters")
    parts = [f"{name}={value}", "Path=/", f"SameSite={same_site}"]
    if max_age is not None:
        parts.append(f"Max-Age={max(0, max_age)}")
    if http_only:
        parts.append("HttpOnly")
    if secure:
        parts.append("Secure")
    return (b"set-cookie", "; ".join(parts).encode("latin-1"))


def clear_cookie(name: str, *, secure: bool, http_only: bool = True) -> tuple[bytes, bytes]:
    """A ``Set-Cookie`` header that deletes ``name``."""
    return set_cookie(name, "", secure=secure, max_age=0, http_only=http_only)


def tab_slots(cookies: dict[str, str], names: CookieNames) -> list[str]:
    """Tab slots present in the request, least recently used first. Cookie names whose slot is
    not a valid tab id (planted by a sibling subdomain, or broken) are ignored: they could not
    be written back, and they are not ours to evict."""
    order = [t for t in cookies.get(names.tabs, "").split(".") if t]
    prefix = names.refresh[: -len(f".{names.tab}")] if names.tab else names.refresh
    present = [
        tab
        for name in cookies
        if name.startswith(prefix + ".") and TAB_RE.match(tab := name[len(prefix) + 1 :])
    ]
    seen = [t for t in order if t in present]
    return seen + [t for t in present if t not in seen]


def join_slots(slots: Iterable[str]) -> str:
    """Serialise the slot order for the ``authbridge.tabs`` cookie."""
    return ".".join(slots)


def cookie_max_age(
    config: AuthConfig, session_expires_at: datetime | None, now: datetime
) -> int | None:
    """``Max-Age`` of the auth cookies (``None``: a browser-session cookie)."""
    if config.browser_session_cookies:
        return None
    if config.cookie_max_age is not None:
        return int(config.cookie_max_age.total_seconds())
    if session_expires_at is None:
        return int(config.session_total_duration.total_seconds())
    return max(0, int((session_expires_at - now).total_seconds()))
