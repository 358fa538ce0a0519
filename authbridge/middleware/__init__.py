"""``AuthMiddleware``: pure ASGI, for any framework.

Per request: read the token (``Authorization: Bearer`` first, else the cookie of the current slot),
verify it without the database (a verify-once cache makes repeats nearly free), rotate the refresh
token when the access token is missing, expired or close to expiry, put an immutable
:class:`~authbridge.AuthState` in ``scope["auth"]``, apply route protection, run the app, and
append ``Set-Cookie`` / ``Vary`` / ``Cache-Control`` on ``http.response.start``.

``_app`` holds the ASGI plumbing (lifespan, protection, response headers); ``_authenticator``
turns credentials into auth state (verification, transparent refresh).
"""

from __future__ import annotations

from ._app import AuthMiddleware, OnRequest

__all__ = ["AuthMiddleware", "OnRequest"]
