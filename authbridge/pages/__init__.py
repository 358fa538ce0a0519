"""Built-in pages: a small, accessible sign-in / sign-up page the middleware serves at the
configured sign-in path when the app has none (the app answered 404 there).

Override the look with a Jinja2 template of your own named ``authbridge/signin.html`` (it can
``{% extends "authbridge/signin_base.html" %}`` and replace a block: ``title``, ``heading``,
``second_factor``, ``oauth``, ``email``, ``password``, ``anonymous``)::

    AuthMiddleware(app, auth, pages=SignInPage(auth, loader=jinja2.FileSystemLoader("templates")))

or embed the forms in your own layout with the macros (:func:`install` adds ``auth_forms``)::

    {{ auth_forms.sign_in(prefix="/api/auth", next=request.query_params.get("next", "")) }}

Extension points for sign-in methods that land later: a provider with ``redirects = True``
(OAuth) gets a ``form.oauth-signin`` button (``data-provider`` = its id, label from its ``name``);
an ``email`` provider turns on the ``email_code`` forms; ``AUTHBRIDGE_ANONYMOUS`` adds
``form#anonymous-form`` ("Continue without an account").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl

import jinja2
from markupsafe import Markup

from .._asgi import Message, Scope, Send
from ..routing import safe_redirect_path
from ..ssr._helpers import auth_bootstrap
from ..state import AuthState

if TYPE_CHECKING:
    from ..engine import Auth

__all__ = ["ERROR_MESSAGES", "PAGE_HEADERS", "OAuthButton", "PageError", "SignInPage", "install"]

ERROR_MESSAGES: Mapping[str, str] = {
    "InvalidCredentials": "Wrong email or password.",
    "AccountExists": "An account with this email already exists. Sign in instead.",
    "InvalidPassword": "Choose a longer password.",
    "InvalidEmail": "That is not a valid email address.",
    "InvalidParams": "Fill in your email and password.",
    "TooManyAttempts": "Too many failed attempts. Try again later.",
    "InvalidCode": "That code is wrong or was already used.",
    "StoreUnavailable": "Signing in is unavailable right now. Try again in a moment.",
}
"""What the page says for each error code (unknown codes get a generic message)."""

_CSP = (
    b"default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; "
    b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", _CSP),
    (b"cache-control", b"private, no-store"),
    (b"vary", b"Cookie"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
"""Headers the page is served with (besides the content type and length)."""


@dataclass(frozen=True, slots=True)
class OAuthButton:
    """One "Continue with ..." button."""

    id: str
    """The provider id (``data-provider``)."""
    name: str
    """The label."""


@dataclass(frozen=True, slots=True)
class PageError:
    """The error to show, beside the form that failed."""

    form: Literal["signin", "signup"]
    code: str


def _environment(loader: jinja2.BaseLoader | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [] if loader is None else [loader]
    loaders.append(jinja2.PackageLoader("authbridge.pages", "templates"))
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True)
    return install(env)


def install(env: jinja2.Environment) -> jinja2.Environment:
    """Make ``auth_forms`` (the form macros) a global of ``env``; add our templates to its
    loader so ``{% import "authbridge/forms.html" %}`` works too. Returns ``env``."""
    ours = jinja2.PackageLoader("authbridge.pages", "templates")
    if env.loader is None:
        env.loader = ours
    elif not getattr(env, "_authbridge_pages", False):
        env.loader = jinja2.ChoiceLoader([env.loader, ours])
    env._authbridge_pages = True  # type: ignore[attr-defined]
    env.globals["auth_forms"] = env.get_template("authbridge/forms.html").module
    return env


def _bootstrap(scope: Scope) -> Markup | None:
    """The state island and the client script, so the browser client runs in the configured
    sharing mode (``per_tab`` forms carry their tab); ``None`` outside the middleware."""
    try:
        return auth_bootstrap(scope)
    except RuntimeError:
        return None


class SignInPage:
    """Renders the sign-in page; :meth:`fallback` serves it where the app answers 404.

    Args:
        auth: the engine (its config and providers decide what the page shows).
        loader: where your own ``authbridge/signin.html`` lives (optional).
    """

    def __init__(self, auth: Auth, *, loader: jinja2.BaseLoader | None = None) -> None:
        self.auth = auth
        self._env = _environment(loader)

    def context(self, scope: Scope) -> dict[str, Any]:
        """The template variables for this request (error, kept email, ``next``, methods)."""
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        code = query.get("error", "")
        error = None
        if code.isalpha() and len(code) <= 64:
            form: Literal["signin", "signup"] = (
                "signup" if query.get("flow") == "signUp" else "signin"
            )
            error = PageError(form, code)
        state = scope.get("auth")
        providers = self.auth.providers.values()
        return {
            "prefix": self.auth.config.route_prefix,
            "next": safe_redirect_path(query.get("next")) or "",
            "error": error,
            "message": ERROR_MESSAGES.get(code, "Sign-in failed. Try again."),
            "email": query.get("email", "")[:320],
            "signed_in": isinstance(state, AuthState) and state.is_authenticated,
            "min_length": self.auth.config.password.min_length,
            "oauth_providers": [
                OAuthButton(p.id, str(getattr(p, "name", p.id)))
                for p in providers
                if getattr(p, "redirects", False)
            ],
            "email_codes": "email" in self.auth.providers,
            "anonymous": "anonymous" in self.auth.providers and self.auth.config.anonymous,
            "reauth": query.get("reauth") == "1",
            "factor": query.get("factor") if "totp" in self.auth.providers else None,
            "bootstrap": _bootstrap(scope),
        }

    def render(self, scope: Scope) -> str:
        """The page's HTML.

        Raises:
            jinja2.TemplateError: an override template is broken.
        """
        return self._env.get_template("authbridge/signin.html").render(self.context(scope))

    def fallback(self, scope: Scope, send: Send) -> Send:
        """Wrap ``send`` of a GET or HEAD: when the app answers 404, send the page instead (and
        drop the app's body). Other methods get ``send`` back unchanged."""
        if scope.get("method") not in ("GET", "HEAD"):
            return send
        replaced = False

        async def send_wrapper(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message.get("status") == 404:
                replaced = True
                body = self.render(scope).encode()
                headers = [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    *PAGE_HEADERS,
                ]
                # Keep what the middleware added (refreshed cookies).
                headers += [h for h in message.get("headers", ()) if h[0].lower() == b"set-cookie"]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                last = scope.get("method") == "HEAD"
                await send({"type": "http.response.body", "body": b"" if last else body})
                return
            if replaced:
                return  # the app's 404 body
            await send(message)

        return send_wrapper
