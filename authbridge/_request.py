"""What the middleware learns about one request, and the cookies it decides to send back.

The headers it reads are scanned once (:func:`scan_headers`) into :class:`RequestHeaders`;
everything else is derived on first use, so a request that carries no credentials costs little.
Paths are matched as the framework routes them: relative to ``root_path`` (uvicorn
``--root-path``, a Starlette ``Mount``); the browser sees them with the prefix put back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal, NamedTuple, overload
from urllib.parse import urlsplit

from . import _tabs
from .cookies import (
    TAB_RE,
    CookieNames,
    clear_cookie,
    cookie_max_age,
    cookie_names,
    origin_facts,
    parse_cookies,
    set_cookie,
)
from .errors import StoreUnavailable

if TYPE_CHECKING:
    from ._asgi import Scope
    from .engine import Auth
    from .sessions import Tokens
    from .state import AuthState

__all__ = [
    "TAB_RE",
    "RequestContext",
    "RequestHeaders",
    "scan_headers",
    "scope_route_path",
]

logger = logging.getLogger("authbridge.middleware")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class RequestHeaders(NamedTuple):
    """The raw values of the request headers the middleware reads (``None`` when absent); the
    first three are the credentials."""

    cookie: bytes | None
    authorization: bytes | None
    tab: bytes | None
    """``X-Authbridge-Tab`` (``per_tab``)."""
    host: bytes | None
    origin: bytes | None
    referer: bytes | None
    sec_fetch_site: bytes | None
    sec_fetch_mode: bytes | None
    accept: bytes | None
    user_agent: bytes | None


_WANTED = {
    name.replace("_", "-").encode(): index for index, name in enumerate(RequestHeaders._fields)
}
_WANTED[b"x-authbridge-tab"] = _WANTED.pop(b"tab")
assert RequestHeaders._fields[:3] == ("cookie", "authorization", "tab")  # see scan_headers
_COUNT = len(RequestHeaders._fields)
_as_headers = tuple.__new__


@overload
def scan_headers(scope: Scope) -> RequestHeaders: ...
@overload
def scan_headers(scope: Scope, *, credentials_only: Literal[True]) -> RequestHeaders | None: ...
def scan_headers(scope: Scope, *, credentials_only: bool = False) -> RequestHeaders | None:
    """The headers the middleware reads, in one pass over the scope's header list.
    ``credentials_only``: ``None`` when the request carries no credentials (no ``Cookie``,
    ``Authorization`` or tab header): an anonymous request needs nothing more."""
    found: list[bytes | None] = [None] * _COUNT
    wanted = _WANTED
    for name, value in scope["headers"]:
        index = wanted.get(name)
        if index is not None:
            if index == 0 and found[0] is not None:  # HTTP/2 may split Cookie
                found[0] += b"; " + value
            else:  # other headers: the last one wins
                found[index] = value
    if credentials_only and found[0] is None and found[1] is None and found[2] is None:
        return None
    return _as_headers(RequestHeaders, found)


def route_path(path: str, root_path: str) -> str:
    """``path`` relative to ``root_path`` (Starlette's ``get_route_path``): the prefix is
    stripped when the path carries it; a server behind a path-stripping proxy may not add it."""
    if path.startswith(root_path):
        rest = path[len(root_path) :]
        if not rest:
            return "/"
        if rest[0] == "/":
            return rest
    return path


def scope_route_path(scope: Scope) -> str:
    """The request's path relative to its ``root_path`` (see :func:`route_path`)."""
    root_path = scope.get("root_path")
    path: str = scope["path"]
    return route_path(path, root_path) if root_path else path


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


class RequestContext:
    """What one request carries, and the ``Set-Cookie`` headers its response will carry: built
    when the request needs it (an auth endpoint, per-tab slots, an origin check, a rotation, a
    denial); a page or fetch with a fresh access cookie is decided without one.

    Attributes:
        scope, headers: the ASGI scope and its scanned headers.
        path: the path relative to ``root_path``, as the framework routes it.
        cookies: the parsed ``Cookie`` header (shared: do not modify).
        facts: secure or not, the request's own origin, the browser-wide cookie names
            (:class:`~authbridge.cookies.OriginFacts`).
        names: the cookie names of the slot being served.
        root_path: the prefix the app is served under (``""`` at the root).
        tab: ``per_tab``: the tab slot served (``None``: the browser-wide slot).
        state: the auth state, once the authenticator has decided it.
        set_cookies: cookies queued for the response.
        evicted: ``per_tab``: refresh tokens of slots this response evicts (their sessions end).
    """

    __slots__ = (
        "cookies",
        "evicted",
        "facts",
        "headers",
        "names",
        "path",
        "scope",
        "set_cookies",
        "state",
        "tab",
        "tab_from_hint",
    )

    def __init__(
        self,
        scope: Scope,
        https_site: bool,
        per_tab: bool,
        headers: RequestHeaders | None = None,
        path: str | None = None,
    ) -> None:
        """Read ``scope`` (its ``headers`` and route ``path`` when the caller has them);
        ``https_site`` and ``per_tab`` are the :class:`~authbridge.AuthConfig` facts (see
        :func:`~authbridge.cookies.origin_facts`); in ``per_tab`` mode, serve the tab the
        request names."""
        if headers is None:
            headers = scan_headers(scope)
        self.scope = scope
        self.headers = headers
        self.path = path if path is not None else scope_route_path(scope)
        cookie = headers.cookie
        self.cookies: dict[str, str] = {} if cookie is None else parse_cookies(cookie)
        self.facts = origin_facts(
            scope.get("scheme", "http"), headers.host or b"", scope, https_site
        )
        self.names: CookieNames = self.facts.names
        self.tab: str | None = None
        self.tab_from_hint = False
        self.state: AuthState | None = None
        self.set_cookies: tuple[tuple[bytes, bytes], ...] = ()
        self.evicted: tuple[str, ...] = ()
        if per_tab:
            _tabs.select_tab(self)

    # -- facts -----------------------------------------------------------------------------------

    @property
    def root_path(self) -> str:
        """The prefix the app is served under (``""`` at the root)."""
        return self.scope.get("root_path") or ""

    @property
    def method(self) -> str:
        """The HTTP method (``GET`` for a WebSocket handshake)."""
        return self.scope.get("method", "GET")  # type: ignore[no-any-return]

    @property
    def origin(self) -> str:
        """The request's own origin, ``scheme://host``."""
        return self.facts.origin

    @property
    def client_ip(self) -> str | None:
        """The client's address, as the server reports it."""
        client = self.scope.get("client")
        return client[0] if client else None

    @property
    def user_agent(self) -> str | None:
        """The ``User-Agent`` header."""
        return _text(self.headers.user_agent)

    @property
    def sec_fetch_site(self) -> str | None:
        """The ``Sec-Fetch-Site`` header."""
        return _text(self.headers.sec_fetch_site)

    def public_path(self, path: str) -> str:
        """``path`` (relative to the app) as the browser sees it: with ``root_path`` put back."""
        return self.root_path + path if self.root_path else path

    def is_state_changing(self) -> bool:
        """Not GET/HEAD/OPTIONS/TRACE."""
        return self.scope.get("method", "GET") not in SAFE_METHODS

    def is_foreign(self, allowed: tuple[str, ...], site_origin: str) -> bool:
        """The browser says this request comes from another origin: by ``Origin``, else by
        ``Referer`` (same origin or allowed), else by ``Sec-Fetch-Site``. Requests with none of
        them (non-browser clients) are not foreign."""
        origin = _text(self.headers.origin)
        if origin is None and self.headers.referer is not None:
            origin = _referer_origin(self.headers.referer)
            if origin is None:
                return True  # a Referer we cannot read vouches for nothing
        if origin is not None:
            origin = origin.rstrip("/")
            return not (origin == self.origin or origin == site_origin or origin in allowed)
        site = self.headers.sec_fetch_site
        return site is not None and site not in (b"same-origin", b"none")

    def wants_html(self) -> bool:
        """A browser navigation (Accept includes text/html)."""
        accept = self.headers.accept
        return self.method in ("GET", "HEAD") and accept is not None and b"text/html" in accept

    def is_navigation(self) -> bool:
        """A top-level or frame navigation (``Sec-Fetch-Mode: navigate``), or a request from a
        browser too old to say."""
        mode = self.headers.sec_fetch_mode
        return mode is None or mode == b"navigate"

    def is_cross_site_subresource(self) -> bool:
        """A request another site's page made (an image, a fetch), not a navigation."""
        return self.headers.sec_fetch_site == b"cross-site" and not self.is_navigation()

    def use_tab(self, tab: str | None) -> None:
        """Serve the given tab slot (``per_tab``)."""
        self.tab = tab
        self.names = cookie_names(self.facts.secure, tab)

    # -- cookies out -----------------------------------------------------------------------------

    def queue_cookie(self, header: tuple[bytes, bytes]) -> None:
        """Add a ``Set-Cookie`` header to the response."""
        self.set_cookies = (*self.set_cookies, header)

    def issue_tokens(self, auth: Auth, tokens: Tokens) -> None:
        """Queue cookies carrying new tokens for the current slot (evicting old tab slots)."""
        max_age = cookie_max_age(auth.config, tokens.session_expires_at, auth.clock())
        names = self.names
        self.queue_cookie(
            set_cookie(names.jwt, tokens.access.token, secure=names.secure, max_age=max_age)
        )
        self.queue_cookie(
            set_cookie(names.refresh, tokens.refresh_token, secure=names.secure, max_age=max_age)
        )
        if self.tab is not None:
            _tabs.update_slots(self, auth, add=self.tab, max_age=max_age)

    async def end_evicted(self, auth: Auth) -> None:
        """``per_tab``: end the sessions of the slots this response evicted, so a browser that
        opened many tabs does not leave live sessions behind in cookies it no longer has."""
        if not self.evicted:
            return
        try:
            await auth.sign_out_refresh_tokens(list(self.evicted))
        except StoreUnavailable:
            logger.warning("could not end the sessions of evicted tab slots; they will expire")

    def clear_tokens(self, auth: Auth) -> None:
        """Queue cookies deleting the current slot's tokens."""
        names = self.names
        self.queue_cookie(clear_cookie(names.jwt, secure=names.secure))
        self.queue_cookie(clear_cookie(names.refresh, secure=names.secure))
        if self.tab is not None:
            _tabs.update_slots(self, auth, remove=self.tab, max_age=None)

    def outgoing_cookies(self, status: int) -> tuple[tuple[bytes, bytes], ...]:
        """Every ``Set-Cookie`` for a response with ``status``: the queued ones, and in
        ``per_tab`` mode the tab hint when it changes."""
        hint = _tabs.hint_cookie(self, status)
        return self.set_cookies if hint is None else (*self.set_cookies, hint)


def _referer_origin(referer: bytes) -> str | None:
    try:
        parts = urlsplit(referer.decode("latin-1"))
    except ValueError:  # e.g. "https://[broken" (an invalid IPv6 host)
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc.lower()}"
