"""What every auth endpoint shares: reading the body (JSON or a form), turning errors into
``{"error": Code}`` or, for forms and page navigations, a redirect back with ``?error=<Code>``,
where a successful form goes, and the cookies a response sets."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit

from .._asgi import (
    BodyTooLarge,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    json_response,
    read_body,
    redirect_response,
)
from .._request import TAB_RE, RequestContext
from ..cookies import set_cookie
from ..engine import Auth
from ..errors import AuthError, InvalidParams, StoreUnavailable, TokenError, TooManyAttempts
from ..providers import Redirect, SignInRequest
from ..routing import safe_redirect_path

__all__ = ["NO_STORE", "HTTPError", "Handler", "Plumbing"]

logger = logging.getLogger("authbridge.endpoints")

MAX_BODY = 64 * 1024
_FORM = "application/x-www-form-urlencoded"
NO_STORE = [(b"cache-control", b"private, no-store")]
"""Token and session responses are never stored by any cache (RFC 6749 §5.1)."""

Handler = Callable[[Scope, Send, RequestContext, Mapping[str, Any], bool], Awaitable[None]]
"""``(scope, send, ctx, body, form)``: one endpoint; ``form`` is true for form posts."""


class HTTPError(Exception):
    """An endpoint's refusal: ``{"error": code}`` with ``status``."""

    def __init__(self, status: int, code: str) -> None:
        self.status = status
        self.code = code
        super().__init__(code)


class Plumbing:
    """Request and answer helpers bound to one :class:`~authbridge.Auth`."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth
        self.config = auth.config
        self.prefix_slash = auth.config.route_prefix + "/"

    async def run(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        ctx: RequestContext,
        method: str,
        handler: Handler,
        *,
        navigation: bool = False,
    ) -> None:
        """Read the body, run ``handler`` and turn its errors into responses (form posts and
        ``navigation`` requests go back to a page with ``?error=<Code>``)."""
        form = navigation
        echo: dict[str, str] = {}
        try:
            body: Mapping[str, Any] = {}
            if method == "POST":
                body, form = await _read_body(scope, receive)
                form = form or navigation
                if form:
                    echo = _form_echo(body)
                tab = body.get("authbridge_tab") if form else None
                if self.config.is_per_tab and isinstance(tab, str) and TAB_RE.match(tab):
                    ctx.use_tab(tab)
            await handler(scope, send, ctx, body, form)
        except HTTPError as exc:
            await self.fail(send, ctx, scope, exc.status, exc.code, form, echo=echo)
        except TooManyAttempts as exc:
            retry = [(b"retry-after", str(max(1, math.ceil(exc.retry_after))).encode())]
            await self.fail(send, ctx, scope, exc.status, exc.code, form, retry, echo=echo)
        except InvalidParams as exc:
            # The message names the field and never holds a submitted value.
            detail = str(exc)
            await self.fail(send, ctx, scope, exc.status, exc.code, form, detail=detail, echo=echo)
        except AuthError as exc:
            if exc.status >= 500 and not isinstance(exc, StoreUnavailable):
                logger.error("auth endpoint failed: %s", exc.code)
            await self.fail(send, ctx, scope, exc.status, exc.code, form, echo=echo)
        except ClientDisconnected:
            return

    async def fail(
        self,
        send: Send,
        ctx: RequestContext,
        scope: Scope,
        status: int,
        code: str,
        form: bool,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        detail: str | None = None,
        echo: Mapping[str, str] | None = None,
    ) -> None:
        """Answer an error: JSON, or for forms a redirect back with ``?error=<code>``."""
        if form:
            await redirect_response(send, self.back(scope, ctx, {"error": code, **(echo or {})}))
            return
        body = {"error": code} if not detail else {"error": code, "detail": detail}
        await json_response(send, status, body, headers or [])

    def back(self, scope: Scope, ctx: RequestContext, params: dict[str, str]) -> str:
        """The page a form came from (same origin only), else the sign-in page, plus params."""
        target = ctx.public_path(self.config.sign_in_path)
        referer = same_origin_referer(scope, ctx)
        if referer is not None:
            path = safe_redirect_path(referer.path)
            if path is not None:
                query = [
                    (k, v)
                    for k, v in parse_qsl(referer.query)
                    if k not in params and k not in ("error", "started")
                ]
                target = path + ("?" + urlencode(query) if query else "")
        sep = "&" if "?" in target else "?"
        return target + sep + urlencode(params)

    def form_redirect(
        self, scope: Scope, ctx: RequestContext, form: bool, body: Mapping[str, Any]
    ) -> str | None:
        """Where a successful form post goes (``None``: not a form, answer JSON):
        ``redirectTo``, else the ``next`` parameter of the (same-origin) page the form is on,
        else the app's root; always a same-site path."""
        if not form:
            return None
        target = safe_redirect_path(body.get("redirectTo"))
        if target is None and "redirectTo" not in body:
            referer = same_origin_referer(scope, ctx)
            if referer is not None:
                target = safe_redirect_path(dict(parse_qsl(referer.query)).get("next"))
        return target or ctx.public_path("/")

    async def finish(
        self,
        scope: Scope,
        send: Send,
        ctx: RequestContext,
        form: bool,
        body: Mapping[str, Any],
        payload: dict[str, Any],
        headers: list[tuple[bytes, bytes]] = NO_STORE,
    ) -> None:
        """Answer a successful action: ``payload`` as JSON, or for forms a 303 to
        ``redirectTo`` (else the page the form is on)."""
        location = self.form_redirect(scope, ctx, form, body)
        if location is not None:
            await redirect_response(send, location)
            return
        await json_response(send, 200, payload, headers)

    async def answer_redirect(
        self, send: Send, ctx: RequestContext, request: SignInRequest, result: Redirect, form: bool
    ) -> None:
        """Answer a flow's start: the provider's cookies, then ``{"redirect"}`` (forms: 303)."""
        self.set_provider_cookies(ctx, request)
        if form:
            await redirect_response(send, result.url)
        else:
            await json_response(send, 200, {"redirect": result.url}, NO_STORE)

    def set_provider_cookies(self, ctx: RequestContext, request: SignInRequest) -> None:
        """Queue the cookies a provider asked for (``request.set_cookies``)."""
        for cookie in request.set_cookies:
            self.set_cookie(ctx, cookie.name, cookie.value, cookie.max_age, cookie.same_site)

    def set_cookie(
        self, ctx: RequestContext, name: str, value: str, max_age: int, same_site: str = "Lax"
    ) -> None:
        """Queue a cookie of ours (``__Host-`` on secure origins)."""
        secure = ctx.names.secure
        ctx.queue_cookie(
            set_cookie(
                ("__Host-" if secure else "") + name,
                value,
                # Browsers drop SameSite=None cookies without Secure (and accept Secure ones
                # from http://localhost).
                secure=secure or same_site == "None",
                max_age=max_age,
                same_site=same_site,
            )
        )

    def signed_in(self, ctx: RequestContext) -> tuple[str, str]:
        """``(user_id, session_id)`` of the request.

        Raises:
            HTTPError: ``Unauthenticated`` (401) for a request without a session of ours.
        """
        state = ctx.state
        if state is None or state.user_id is None or state.session_id is None:
            raise HTTPError(401, "Unauthenticated")
        return state.user_id, state.session_id

    def current_session(self, ctx: RequestContext) -> str | None:
        """The session this browser slot is signed in with (replaced on a new sign-in)."""
        if ctx.state is not None and ctx.state.source == "cookie" and ctx.state.tab == ctx.tab:
            return ctx.state.session_id
        token = ctx.cookies.get(ctx.names.jwt)
        if not token:
            return None
        try:
            return self.auth.verify_token(token).session_id
        except TokenError:
            return None


async def _read_body(scope: Scope, receive: Receive) -> tuple[Mapping[str, Any], bool]:
    """The body as a mapping, and whether it was a form.

    Raises:
        HTTPError: too large (413), malformed (400) or of another media type (415).
    """
    content_type = ""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            content_type = value.decode("latin-1").split(";")[0].strip().lower()
    try:
        raw = await read_body(receive, MAX_BODY)
    except BodyTooLarge as exc:
        raise HTTPError(413, "BodyTooLarge") from exc
    if content_type == "application/json":
        try:
            data = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError) as exc:
            # RecursionError: deeply nested arrays fit easily in the size limit.
            raise HTTPError(400, "InvalidJSON") from exc
        if not isinstance(data, dict) or not _is_unicode(data):
            raise HTTPError(400, "InvalidJSON")
        return data, False
    if content_type == _FORM:
        try:
            pairs = parse_qsl(
                raw.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=False,
                max_num_fields=50,
                errors="strict",  # %FF is garbage, not a U+FFFD password
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise HTTPError(400, "InvalidForm") from exc
        return dict(pairs), True
    if not raw.strip() and content_type == "":
        return {}, False
    raise HTTPError(415, "UnsupportedMediaType")


def _form_echo(body: Mapping[str, Any]) -> dict[str, str]:
    """What a failed sign-in form gets back in the redirect so the page can show the error
    beside that form with the email kept: the flow and the email, never the password."""
    echo: dict[str, str] = {}
    for name in ("flow", "email"):
        value = body.get(name)
        if isinstance(value, str) and 0 < len(value) <= 320:
            echo[name] = value
    return echo


def same_origin_referer(scope: Scope, ctx: RequestContext) -> SplitResult | None:
    """The ``Referer`` header, parsed, when it names a page of this origin."""
    for name, value in scope.get("headers", ()):
        if name == b"referer":
            try:
                parts: SplitResult = urlsplit(value.decode("latin-1"))
            except ValueError:  # e.g. "https://[broken" (an invalid IPv6 host)
                return None
            if f"{parts.scheme}://{parts.netloc}" == ctx.origin and parts.path.startswith("/"):
                return parts
            return None
    return None


def _is_unicode(data: Any) -> bool:
    """False when JSON ``\\ud800``-style escapes left lone surrogates, which no database
    driver can encode."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
