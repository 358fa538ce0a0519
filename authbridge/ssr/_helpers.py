"""The Convex Auth Next.js helpers: token, is_authenticated, redirect, http_client, bootstrap."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from markupsafe import Markup

from .._asgi import Headers, Receive, Scope, Send, redirect_response
from .._extras import require
from ..endpoints import client_script_url
from ..routing import safe_redirect_path
from ..state import SCOPE_ENGINE, RequestLike, get_auth_state

try:  # Starlette is optional; FastAPI needs a real Response, other frameworks take ASGI apps.
    from starlette.responses import RedirectResponse as _StarletteRedirect
except ImportError:  # pragma: no cover - exercised only without starlette
    _StarletteRedirect = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    import httpx
    from starlette.responses import RedirectResponse

    from ..engine import Auth

__all__ = [
    "STATE_ELEMENT_ID",
    "auth_bootstrap",
    "auth_token",
    "bootstrap_state",
    "http_client",
    "is_authenticated",
    "redirect",
]

STATE_ELEMENT_ID = "authbridge-state"
"""The ``id`` of the JSON state island that the browser client reads."""

# Inside <script>, "</script>", "<!--" and the JS line terminators must not appear verbatim.
_SCRIPT_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def scope_of(request: RequestLike) -> Scope:
    """The ASGI scope of a framework request, or the scope itself."""
    return cast("Scope", getattr(request, "scope", request))


def auth_token(request: RequestLike) -> str | None:
    """The request's current access token (JWT), refreshed if the middleware rotated it.

    Raises:
        RuntimeError: ``AuthMiddleware`` did not handle this request.
    """
    return get_auth_state(request).token


def is_authenticated(request: RequestLike) -> bool:
    """True when a user is signed in. No database or network access.

    Raises:
        RuntimeError: ``AuthMiddleware`` did not handle this request.
    """
    return get_auth_state(request).is_authenticated


class _Redirect:
    """A minimal ASGI redirect, used when Starlette is not installed."""

    __slots__ = ("headers", "status_code")

    def __init__(self, location: str, status_code: int) -> None:
        self.status_code = status_code
        self.headers: Headers = [(b"location", location.encode("latin-1"))]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await redirect_response(send, self.headers[0][1].decode("latin-1"), status=self.status_code)


def redirect(request: RequestLike, path: str, status_code: int = 303) -> RedirectResponse:
    """Redirect to ``path`` if it is a same-site relative path, else to ``/``.

    Returns Starlette's ``RedirectResponse`` when Starlette is installed (FastAPI needs a real
    ``Response``), else a tiny ASGI app with the same ``status_code`` / ``headers``; both can be
    returned from an ``AuthMiddleware(on_request=...)`` hook. ``request`` mirrors
    ``nextjsMiddlewareRedirect(request, path)``; the ``Location`` is relative.
    """
    location = safe_redirect_path(path, "/") or "/"
    if _StarletteRedirect is None:  # pragma: no cover - exercised only without starlette
        return cast("RedirectResponse", _Redirect(location, status_code))
    return _StarletteRedirect(location, status_code=status_code)


def http_client(request: RequestLike, **httpx_kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that calls other services as the signed-in user.

    Sends ``Authorization: Bearer <the request's current token>`` (unless ``headers`` already
    has an ``Authorization``); signed out, it sends none. Use it as ``async with``.

    Raises:
        RuntimeError: ``AuthMiddleware`` did not handle this request.
        MissingExtra: httpx is not installed (``pip install 'authbridge[ssr]'``).
    """
    require("httpx", "ssr", "authbridge.ssr.http_client")
    import httpx

    token = get_auth_state(request).token
    headers = httpx.Headers(httpx_kwargs.pop("headers", None))
    if token is not None and "authorization" not in headers:
        headers["authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(headers=headers, **httpx_kwargs)


def _engine_of(request: RequestLike) -> Auth:
    engine = scope_of(request).get(SCOPE_ENGINE)
    if engine is None:
        raise RuntimeError("no authbridge engine on this request: wrap the app in AuthMiddleware")
    return cast("Auth", engine)


def bootstrap_state(request: RequestLike) -> dict[str, Any]:
    """The state island's data (never the refresh token): ``isAuthenticated``, ``userId``,
    ``sessionId``, ``expiresAt`` (epoch ms or ``None``), ``sharing``, ``tab``, ``prefix`` (the
    endpoints' URL prefix, under the app's ``root_path``), ``refreshMarginMs`` (how long before
    expiry a token is renewed) and ``allowedOrigins`` (origins ``authbridge.fetch`` may send
    the token to, besides the page's own).

    Raises:
        RuntimeError: ``AuthMiddleware`` did not handle this request.
    """
    state = get_auth_state(request)
    config = _engine_of(request).config
    signed_in = state.is_authenticated
    expires = state.expires_at if signed_in else None
    return {
        "isAuthenticated": signed_in,
        "userId": state.user_id,
        "sessionId": state.session_id,
        "expiresAt": int(expires.timestamp() * 1000) if expires is not None else None,
        "sharing": config.session_sharing,
        "tab": state.tab,
        "prefix": _endpoint_prefix(request),
        "refreshMarginMs": int(config.refresh_margin.total_seconds() * 1000),
        "allowedOrigins": list(config.allowed_origins),
    }


def _endpoint_prefix(request: RequestLike) -> str:
    root_path: str = scope_of(request).get("root_path", "")
    return root_path + _engine_of(request).config.route_prefix


def auth_bootstrap(request: RequestLike, *, nonce: str | None = None) -> Markup:
    """The ``<head>`` snippet: the JSON state island, then the browser client, loaded
    synchronously so the page is never painted with the wrong state.

    Args:
        nonce: a CSP nonce, added to both ``<script>`` tags.

    Raises:
        RuntimeError: ``AuthMiddleware`` did not handle this request.
    """
    data = json.dumps(bootstrap_state(request), separators=(",", ":"), ensure_ascii=False)
    nonce_attr = Markup(' nonce="{}"').format(nonce) if nonce is not None else Markup("")
    return Markup(
        '<script id="{id}" type="application/json"{nonce}>{data}</script>\n'
        '<script src="{src}"{nonce}></script>'
    ).format(
        id=STATE_ELEMENT_ID,
        nonce=nonce_attr,
        # Safe: JSON with every character that could end the <script> escaped.
        data=Markup(data.translate(_SCRIPT_ESCAPES)),  # noqa: S704
        src=client_script_url(_endpoint_prefix(request)),
    )
