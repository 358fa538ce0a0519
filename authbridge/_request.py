"""What the middleware learns about one request, and the cookies it decides to send back."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING

from .cookies import (
    HINT_COOKIE,
    CookieNames,
    clear_cookie,
    cookie_names,
    is_development_host,
    join_slots,
    parse_cookies,
    set_cookie,
    tab_slots,
)
from .errors import StoreUnavailable
from .state import AuthState

if TYPE_CHECKING:
    from ._asgi import Scope
    from .engine import Auth
    from .sessions import Tokens

__all__ = [
    "AUTHORIZATION",
    "COOKIE",
    "HOST",
    "TAB_HEADER",
    "RequestContext",
    "origin_facts",
    "read_context",
    "scan_headers",
]

logger = logging.getLogger("authbridge.middleware")

TAB_RE = re.compile(r"^[A-Za-z0-9_-]{6,40}$")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
HINT_MAX_AGE = 10


_SECURE_NAMES = cookie_names(True)


class RequestContext:
    """Per-request facts, parsed once from the headers (the rarely needed ones on first use)."""

    __slots__ = (
        "_client",
        "_cookies",
        "_found",
        "authorization",
        "cookie_header",
        "evicted",
        "method",
        "names",
        "origin",
        "path",
        "secure",
        "set_cookies",
        "state",
        "tab",
        "tab_from_hint",
    )

    def __init__(
        self,
        scope: Scope,
        found: list[bytes | None],
        secure: bool,
        origin: str,
        names: CookieNames,
    ) -> None:
        self.method: str = scope.get("method", "GET")
        self.path: str = scope.get("path", "/")
        self.secure = secure
        self.origin = origin
        """The request's own origin, ``scheme://host``."""
        self.names = names
        self.cookie_header = found[0]
        self.authorization = found[1]
        self._found = found
        self._client = scope.get("client")
        self._cookies: dict[str, str] | None = None
        self.tab: str | None = None
        self.tab_from_hint = False
        self.state: AuthState | None = None
        self.set_cookies: list[tuple[bytes, bytes]] = []
        self.evicted: list[str] = []
        """``per_tab``: refresh tokens of slots evicted by this response (their sessions end)."""

    def _header(self, index: int) -> str | None:
        value = self._found[index]
        return None if value is None else value.decode("latin-1")

    @property
    def origin_header(self) -> str | None:
        """The ``Origin`` header."""
        return self._header(3)

    @property
    def sec_fetch_site(self) -> str | None:
        """The ``Sec-Fetch-Site`` header."""
        return self._header(4)

    @property
    def sec_fetch_mode(self) -> str | None:
        """The ``Sec-Fetch-Mode`` header."""
        return self._header(5)

    @property
    def accept(self) -> str | None:
        """The ``Accept`` header."""
        return self._header(6)

    @property
    def tab_header(self) -> str | None:
        """The ``X-Authbridge-Tab`` header (``per_tab``)."""
        return self._header(7)

    @property
    def user_agent(self) -> str | None:
        """The ``User-Agent`` header."""
        return self._header(8)

    @property
    def client_ip(self) -> str | None:
        """The client's address, as the server reports it."""
        return self._client[0] if self._client else None

    @property
    def cookies(self) -> dict[str, str]:
        """The parsed Cookie header."""
        if self._cookies is None:
            self._cookies = parse_cookies(self.cookie_header)
        return self._cookies

    def is_state_changing(self) -> bool:
        """Not GET/HEAD/OPTIONS/TRACE."""
        return self.method not in SAFE_METHODS

    def is_foreign(self, allowed: tuple[str, ...], site_origin: str) -> bool:
        """The browser says this request comes from another origin (Origin, else
        Sec-Fetch-Site). Requests without either header (non-browser clients) are not foreign."""
        if self.origin_header is not None:
            origin = self.origin_header.rstrip("/")
            return not (origin == self.origin or origin == site_origin or origin in allowed)
        if self.sec_fetch_site is not None:
            return self.sec_fetch_site not in ("same-origin", "none")
        return False

    def wants_html(self) -> bool:
        """A browser navigation (Accept includes text/html)."""
        return (
            self.method in ("GET", "HEAD")
            and self.accept is not None
            and "text/html" in self.accept
        )

    def is_navigation(self) -> bool:
        """A top-level or frame navigation (``Sec-Fetch-Mode: navigate``), or a request from a
        browser too old to say."""
        return self.sec_fetch_mode is None or self.sec_fetch_mode == "navigate"

    def use_tab(self, tab: str | None) -> None:
        """Serve the given tab slot (``per_tab``)."""
        self.tab = tab
        self.names = cookie_names(self.secure, tab)

    # -- cookies out ---------------------------------------------------------------------------

    def issue_tokens(self, auth: Auth, tokens: Tokens) -> None:
        """Queue cookies carrying new tokens for the current slot (evicting old tab slots)."""
        now = auth.clock()
        max_age = _max_age(auth, tokens.session_expires_at, now)
        secure = self.names.secure
        self.set_cookies.append(
            set_cookie(self.names.jwt, tokens.access.token, secure=secure, max_age=max_age)
        )
        self.set_cookies.append(
            set_cookie(self.names.refresh, tokens.refresh_token, secure=secure, max_age=max_age)
        )
        if self.tab is not None:
            self._update_slots(auth, add=self.tab, max_age=max_age)

    async def end_evicted(self, auth: Auth) -> None:
        """``per_tab``: end the sessions of the slots this response evicted, so a browser that
        opened many tabs does not leave live sessions behind in cookies it no longer has."""
        if not self.evicted:
            return
        try:
            await auth.sign_out_refresh_tokens(self.evicted)
        except StoreUnavailable:
            logger.warning("could not end the sessions of evicted tab slots; they will expire")

    def clear_tokens(self, auth: Auth) -> None:
        """Queue cookies deleting the current slot's tokens."""
        secure = self.names.secure
        self.set_cookies.append(clear_cookie(self.names.jwt, secure=secure))
        self.set_cookies.append(clear_cookie(self.names.refresh, secure=secure))
        if self.tab is not None:
            self._update_slots(auth, remove=self.tab, max_age=None)

    def _update_slots(
        self, auth: Auth, *, add: str | None = None, remove: str | None = None, max_age: int | None
    ) -> None:
        order = [t for t in tab_slots(self.cookies, self.names) if t not in (add, remove)]
        if add is not None:
            order.append(add)
        limit = auth.config.max_tab_slots
        while len(order) > limit:
            evicted = order.pop(0)
            old = self.names.for_tab(evicted)
            refresh = self.cookies.get(old.refresh)
            if refresh:
                self.evicted.append(refresh)
            self.set_cookies.append(clear_cookie(old.jwt, secure=old.secure))
            self.set_cookies.append(clear_cookie(old.refresh, secure=old.secure))
        if order:
            self.set_cookies.append(
                set_cookie(
                    self.names.tabs,
                    join_slots(order),
                    secure=self.names.secure,
                    max_age=max_age if max_age is not None else _max_age(auth, None, auth.clock()),
                )
            )
        else:
            self.set_cookies.append(clear_cookie(self.names.tabs, secure=self.names.secure))

    def hint_cookie(self, status: int) -> tuple[bytes, bytes] | None:
        """``per_tab``: the ``Set-Cookie`` for the tab hint after a response with ``status``.

        A navigation that used the hint consumes it (cleared), so it cannot leak into another
        tab's next request; a navigation answered by a redirect re-arms it for the follow-up
        GET (form post → 303, protected page → sign-in page). Requests that did not use the hint
        (``fetch`` with the tab header, subresources) leave it for the navigation it was set for.
        """
        if self.tab is not None and 300 <= status < 400 and self.is_navigation():
            return set_cookie(
                HINT_COOKIE, self.tab, secure=self.secure, max_age=HINT_MAX_AGE, http_only=False
            )
        if self.tab_from_hint:
            return clear_cookie(HINT_COOKIE, secure=self.secure, http_only=False)
        return None


def _max_age(auth: Auth, session_expires_at: datetime | None, now: datetime) -> int | None:
    config = auth.config
    if config.browser_session_cookies:
        return None
    if config.cookie_max_age is not None:
        return int(config.cookie_max_age.total_seconds())
    if session_expires_at is None:
        return int(config.session_total_duration.total_seconds())
    return max(0, int((session_expires_at - now).total_seconds()))


_HEADER_SLOTS = {
    b"cookie": 0,
    b"authorization": 1,
    b"host": 2,
    b"origin": 3,
    b"sec-fetch-site": 4,
    b"sec-fetch-mode": 5,
    b"accept": 6,
    b"x-authbridge-tab": 7,
    b"user-agent": 8,
}
_ORIGINS: dict[tuple[str, bytes], tuple[bool, str, CookieNames]] = {}
_ORIGINS_LIMIT = 256


def origin_facts(scheme: str, raw_host: bytes, scope: Scope) -> tuple[bool, str, CookieNames]:
    """(secure, own origin, cookie names) for a scheme + Host, memoised (bounded)."""
    key = (scheme, raw_host)
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
    secure = web_scheme == "https" or not is_development_host(host)
    facts = (secure, f"{web_scheme}://{host}", cookie_names(secure))
    if len(_ORIGINS) >= _ORIGINS_LIMIT:
        _ORIGINS.clear()  # bounded: Host is client-controlled
    if raw_host:
        _ORIGINS[key] = facts
    return facts


COOKIE, AUTHORIZATION, HOST, TAB_HEADER = 0, 1, 2, 7
"""Indexes into :func:`scan_headers`' result."""


def scan_headers(scope: Scope) -> list[bytes | None]:
    """The raw values of the headers the middleware reads, in one pass, by ``_HEADER_SLOTS``
    index (``COOKIE``, ``AUTHORIZATION``, ``HOST``, ...)."""
    found: list[bytes | None] = [None] * 9
    slots = _HEADER_SLOTS
    for name, value in scope.get("headers", ()):
        index = slots.get(name)
        if index is not None:
            if index == 0 and found[0] is not None:
                found[0] = found[0] + b"; " + value  # HTTP/2 may split Cookie
            else:
                found[index] = value
    return found


def read_context(
    scope: Scope, per_tab: bool, found: list[bytes | None] | None = None
) -> RequestContext:
    """The request context, from headers already scanned by :func:`scan_headers` or scanned
    now."""
    if found is None:
        found = scan_headers(scope)
    cookie_header, raw_host = found[COOKIE], found[HOST] or b""
    secure, origin, names = origin_facts(scope.get("scheme", "http"), raw_host, scope)
    ctx = RequestContext(scope, found, secure, origin, names)
    if per_tab:
        tab: str | None = None
        tab_header = ctx.tab_header
        if tab_header is not None and TAB_RE.match(tab_header):
            tab = tab_header
        elif cookie_header is not None and ctx.is_navigation():
            # Only navigations read the hint: a fetch or subresource of another tab must not
            # take (and consume) the hint a navigating tab just set.
            hint = ctx.cookies.get(HINT_COOKIE)
            if hint is not None and TAB_RE.match(hint):
                tab = hint
                ctx.tab_from_hint = True
        if tab is not None:
            ctx.use_tab(tab)
    return ctx
