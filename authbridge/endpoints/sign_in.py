"""``POST signin`` and the routes providers own (an OAuth ``callback/<id>``, the email link's
``email/confirm`` page): run the provider, then answer in DESIGN §17.2's shapes (forms and page
navigations get redirects)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .._asgi import Receive, Scope, Send, json_response, redirect_response, send_response
from .._request import TAB_RE, RequestContext
from ..devices import DEVICE_COOKIE, DEVICE_COOKIE_MAX_AGE
from ..errors import InvalidParams
from ..providers import (
    Page,
    ProviderRoute,
    Redirect,
    RouteRequest,
    SignedIn,
    SignInRequest,
    Started,
)
from ..routing import safe_redirect_path
from ..signin import SignInResult
from ._plumbing import NO_STORE, Handler, Plumbing

__all__ = ["SignInRoutes"]

logger = logging.getLogger("authbridge.endpoints")


class SignInRoutes:
    """``signin`` and the providers' own routes."""

    def __init__(self, plumbing: Plumbing) -> None:
        self._p = plumbing
        self.auth = plumbing.auth

    def routes(self) -> dict[str, tuple[str, Handler]]:
        """``{subpath: (method, handler)}``."""
        return {"signin": ("POST", self._sign_in)}

    async def _sign_in(
        self, scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
    ) -> None:
        params: Any
        if form:
            provider = body.get("provider") or "password"
            # redirectTo stays in params: OAuth carries it away and back, a magic link to it.
            params = {k: v for k, v in body.items() if k not in ("provider", "authbridge_tab")}
        else:
            provider = body.get("provider")
            params = body.get("params")
            if not isinstance(provider, str) or not provider:
                raise InvalidParams("provider is required (a string)")
            if not isinstance(params, dict):
                raise InvalidParams("params is required (an object)")
        request = self.sign_in_request(ctx)
        result = await self.auth.sign_in_step(str(provider), params, request)
        await self._answer(scope, send, ctx, request, result, form, body)

    def sign_in_request(self, ctx: RequestContext) -> SignInRequest:
        """What a provider learns about this request."""
        session_id = self._p.current_session(ctx)
        state = ctx.state
        user_id = state.user_id if state is not None and session_id == state.session_id else None
        cookies = ctx.cookies
        if ctx.names.secure:
            # Only __Host- cookies: a sibling subdomain cannot plant them.
            cookies = {n[7:]: v for n, v in cookies.items() if n.startswith("__Host-")}
        known = self.auth.devices.read(cookies.get(DEVICE_COOKIE)) if self.auth.devices else None
        return SignInRequest(
            ip=ctx.client_ip,
            user_agent=ctx.user_agent,
            user_id=user_id,
            session_id=session_id,
            cookies=cookies,
            device=known[1] if known else None,
            device_id=known[0] if known else None,
            tab=ctx.tab,
            auth_time=state.auth_time if user_id is not None and state is not None else None,
        )

    async def provider_route(
        self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext, route: ProviderRoute
    ) -> None:
        """Dispatch a route a provider owns (OAuth callback, email link page)."""
        allowed = set(route.methods) | ({"HEAD"} if "GET" in route.methods else set())
        if ctx.method not in allowed:
            allow = ", ".join(sorted(allowed)).encode()
            await json_response(send, 405, {"error": "MethodNotAllowed"}, [(b"allow", allow)])
            return
        config = self.auth.config
        if (
            ctx.method == "POST"
            and route.check_origin
            and ctx.is_foreign(config.allowed_origins, config.site_origin)
        ):
            await json_response(send, 403, {"error": "Forbidden"})
            return

        async def handler(
            scope: Scope, send: Send, ctx: RequestContext, body: Mapping[str, Any], form: bool
        ) -> None:
            request = self.sign_in_request(ctx)
            query = dict(
                parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            )
            answer = await route.handler(
                self.auth.provider_context, RouteRequest(ctx.method, query, body, request)
            )
            if isinstance(answer, Page):
                self._p.set_provider_cookies(ctx, request)
                await send_response(
                    send,
                    answer.status,
                    answer.body.encode("utf-8"),
                    [*NO_STORE, *((k.encode(), v.encode()) for k, v in answer.headers)],
                    answer.content_type.encode("latin-1"),
                )
                return
            if (
                isinstance(answer, SignedIn)
                and answer.tab is not None
                and config.is_per_tab
                and TAB_RE.match(answer.tab)
            ):
                # The session lands in the tab that started the flow (and replaces that slot's).
                ctx.use_tab(answer.tab)
                request = dataclasses.replace(
                    request, session_id=self._p.current_session(ctx), tab=answer.tab
                )
            owner = self.auth.route_owners.get(route.path)
            result = await self.auth.conclude(answer, request, provider=owner)
            await self._answer(scope, send, ctx, request, result, form, body)

        method = "POST" if ctx.method == "POST" else "GET"
        # A GET is a navigation (errors go back to a page) unless it asks for JSON (fetch).
        accept = ctx.headers.accept
        wants_json = accept is not None and b"application/json" in accept
        navigation = ctx.method != "POST" and not wants_json
        await self._p.run(scope, receive, send, ctx, method, handler, navigation=navigation)

    async def _answer(
        self,
        scope: Scope,
        send: Send,
        ctx: RequestContext,
        request: SignInRequest,
        result: SignInResult | Started | Redirect,
        form: bool,
        body: Mapping[str, Any],
    ) -> None:
        """Map a sign-in step to DESIGN §17.2's shapes (forms and navigations: redirects)."""
        if isinstance(result, Redirect):
            await self._p.answer_redirect(send, ctx, request, result, form)
            return
        self._p.set_provider_cookies(ctx, request)
        if isinstance(result, Started):
            await self._started(scope, send, ctx, result, form, body)
            return
        if request.signed_in_accounts and self.auth.devices is not None:
            device = self.auth.devices.issue(request.signed_in_accounts[-1], request.device_id)
            self._p.set_cookie(ctx, DEVICE_COOKIE, device, DEVICE_COOKIE_MAX_AGE)
        ctx.issue_tokens(self.auth, result.tokens)
        if ctx.facts.secure and scope.get("scheme") == "http":
            _warn_secure_cookies_over_http(ctx.origin)
        await ctx.end_evicted(self.auth)
        self.auth.remember_token(result.tokens.access)
        location = self._p.form_redirect(scope, ctx, form, body)
        if location is not None and result.redirect_to is not None:
            location = safe_redirect_path(result.redirect_to) or location
        if location is not None:
            await redirect_response(send, location)
            return
        await json_response(
            send, 200, {"signedIn": True, "userId": result.user_id, "sessionId": result.session_id}
        )

    async def _started(
        self,
        scope: Scope,
        send: Send,
        ctx: RequestContext,
        result: Started,
        form: bool,
        body: Mapping[str, Any],
    ) -> None:
        """``{"started": true}`` (plus ``"factor"``); a form goes back to a page that asks for
        the code or the second factor."""
        if not form:
            payload: dict[str, Any] = {"started": True}
            if result.factor is not None:
                payload["factor"] = result.factor
            await json_response(send, 200, payload, NO_STORE)
            return
        if result.factor is None:
            # Back to the form's page, which now asks for the code it says was sent.
            await redirect_response(send, self._p.back(scope, ctx, _started_params(body)))
            return
        # A second factor is needed: back to the form's page (the sign-in page), which asks for
        # it, keeping where the browser was going.
        params = {"factor": result.factor}
        location = self._p.form_redirect(scope, ctx, form, body)
        if location is not None and location != "/":
            params["next"] = location
        target = self._p.back(scope, ctx, params)
        if urlsplit(target).path.startswith(ctx.public_path(self._p.prefix_slash)):
            # From a page of ours (the email link's confirm page): the sign-in page.
            target = ctx.public_path(self.auth.config.sign_in_path) + "?" + urlencode(params)
        await redirect_response(send, target)


def _started_params(body: Mapping[str, Any]) -> dict[str, str]:
    """``?started=<flow or provider>&email=...`` for the page a code-sending form came from."""
    flow, provider = body.get("flow"), body.get("provider")
    started = flow if isinstance(flow, str) and flow else provider
    params = {"started": started if isinstance(started, str) and started else "password"}
    for name in ("email", "phone"):
        value = body.get(name)
        if isinstance(value, str) and 0 < len(value.strip()) <= 320:
            params[name] = value.strip()
    return params


_warned_plain_http: set[str] = set()


def _warn_secure_cookies_over_http(origin: str) -> None:
    """Secure cookies set over plain http never come back: say so once per origin."""
    if origin in _warned_plain_http or len(_warned_plain_http) >= 16:
        return
    _warned_plain_http.add(origin)
    logger.warning(
        "signed in over plain http at %s: the session cookies are Secure (only localhost and test "
        "hosts get plain ones), so a browser or test client will not send them back; use https, "
        "or localhost / http://testserver / *.test in tests (see authbridge.testing)",
        origin,
    )
