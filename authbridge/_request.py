"""What the middleware learns about one request, and the cookies it decides to send back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from .cookies import (
    HINT_COOKIE,
    CookieNames,
    clear_cookie,
    cookie_names,
    is_loopback_host,
    join_slots,
    parse_cookies,
    set_cookie,
    tab_slots,
)
from .state import AuthState

if TYPE_CHECKING:
    from ._asgi import Scope
    from .engine import Auth
    from .sessions import Tokens

__all__ = ["RequestContext", "read_context"]

TAB_RE = re.compile(r"^[A-Za-z0-9_-]{6,40}$")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
HINT_MAX_AGE = 10


@dataclass(slots=True)
class RequestContext:
    """Per-request facts, parsed once from the headers."""

    method: str
    path: str
    secure: bool
    origin: str
    """The request's own origin, ``scheme://host``."""
    cookie_header: bytes | None = None
    authorization: bytes | None = None
    origin_header: str | None = None
    sec_fetch_site: str | None = None
    sec_fetch_mode: str | None = None
    accept: str | None = None
    tab_header: str | None = None
    user_agent: str | None = None
    client_ip: str | None = None
    _cookies: dict[str, str] | None = None
    tab: str | None = None
    tab_from_hint: bool = False
    names: CookieNames = field(default_factory=lambda: cookie_names(True))
    state: AuthState | None = None
    set_cookies: list[tuple[bytes, bytes]] = field(default_factory=list)

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


def read_context(scope: Scope, per_tab: bool) -> RequestContext:
    """Parse the headers the middleware needs, in one pass."""
    cookie_header = authorization = origin_header = fetch_site = fetch_mode = None
    accept = tab_header = user_agent = None
    host = ""
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            cookie_header = value if cookie_header is None else cookie_header + b"; " + value
        elif name == b"authorization":
            authorization = value
        elif name == b"host":
            host = value.decode("latin-1")
        elif name == b"origin":
            origin_header = value.decode("latin-1")
        elif name == b"sec-fetch-site":
            fetch_site = value.decode("latin-1")
        elif name == b"sec-fetch-mode":
            fetch_mode = value.decode("latin-1")
        elif name == b"accept":
            accept = value.decode("latin-1")
        elif name == b"x-authbridge-tab":
            tab_header = value.decode("latin-1")
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
    scheme = scope.get("scheme", "http")
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "localhost"
    web_scheme = "https" if scheme in ("https", "wss") else "http"
    # Browsers send Origin lower-case and without a default port; some proxies add ":443".
    host = host.lower()
    default_port = ":443" if web_scheme == "https" else ":80"
    if host.endswith(default_port):
        host = host[: -len(default_port)]
    secure = web_scheme == "https" or not is_loopback_host(host)
    client = scope.get("client")
    ctx = RequestContext(
        method=scope.get("method", "GET"),
        path=scope.get("path", "/"),
        secure=secure,
        origin=f"{web_scheme}://{host}",
        cookie_header=cookie_header,
        authorization=authorization,
        origin_header=origin_header,
        sec_fetch_site=fetch_site,
        sec_fetch_mode=fetch_mode,
        accept=accept,
        tab_header=tab_header,
        user_agent=user_agent,
        client_ip=client[0] if client else None,
        names=cookie_names(secure),
    )
    if per_tab:
        tab: str | None = None
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
