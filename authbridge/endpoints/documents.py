"""The documents served without authentication: the browser client (``{prefix}/client.js``),
the public keys (``/.well-known/jwks.json``) and the OpenID discovery document
(``/.well-known/openid-configuration``)."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

from .._asgi import Scope, Send, json_response, send_response
from ..engine import Auth
from ..errors import StoreUnavailable

__all__ = ["JWKS_PATH", "OPENID_PATH", "Documents", "client_script", "client_script_url"]

JWKS_PATH = "/.well-known/jwks.json"
OPENID_PATH = "/.well-known/openid-configuration"
_DISCOVERY_CACHE = b"public, max-age=15, stale-while-revalidate=15, stale-if-error=86400"


def client_script() -> bytes:
    """The browser client's source (``authbridge/static/authbridge.js``)."""
    return resources.files("authbridge").joinpath("static/authbridge.js").read_bytes()


_SCRIPT = client_script()
_SCRIPT_VERSION = hashlib.sha256(_SCRIPT).hexdigest()[:12]


def client_script_url(prefix: str) -> str:
    """The cache-busted URL of the browser client under ``prefix``."""
    return f"{prefix}/client.js?v={_SCRIPT_VERSION}"


class Documents:
    """Serves the three documents for one :class:`~authbridge.Auth`."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth
        self.script_path = auth.config.route_prefix + "/client.js"

    def serves(self, path: str) -> bool:
        """True for the paths (relative to ``root_path``) of the documents."""
        return path in (JWKS_PATH, OPENID_PATH, self.script_path)

    async def serve(self, scope: Scope, send: Send, path: str) -> None:
        """Answer a request for one of the documents (GET or HEAD; the others get 405)."""
        if scope.get("method") not in ("GET", "HEAD"):
            await json_response(
                send, 405, {"error": "MethodNotAllowed"}, [(b"allow", b"GET, HEAD")]
            )
            return
        if path == self.script_path:
            versioned = f"v={_SCRIPT_VERSION}".encode() in scope.get("query_string", b"")
            cache = b"public, max-age=31536000, immutable" if versioned else b"public, max-age=300"
            await send_response(
                send,
                200,
                _SCRIPT,
                [(b"cache-control", cache), (b"x-content-type-options", b"nosniff")],
                b"text/javascript; charset=utf-8",
            )
            return
        try:
            await self.auth.open()
            document = self.auth.jwks() if path == JWKS_PATH else self.auth.openid_configuration()
        except StoreUnavailable:
            await json_response(send, 503, {"error": "StoreUnavailable"})
            return
        body = json.dumps(document, separators=(",", ":")).encode()
        await send_response(
            send, 200, body, [(b"cache-control", _DISCOVERY_CACHE)], b"application/json"
        )
