"""``per_tab`` cookie policy: which slot a request is served from, slot eviction and the tab hint.

Each tab has its own pair of cookies (``authbridge.jwt.<tab>``), an ``authbridge.tabs`` cookie
lists the slots least recently issued first, and at most ``max_tab_slots`` are kept. Scripts name
their tab with the ``X-Authbridge-Tab`` header; navigations carry the short-lived
``authbridge.tab`` hint cookie the browser client sets just before leaving the page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cookies import (
    HINT_COOKIE,
    TAB_RE,
    clear_cookie,
    cookie_max_age,
    join_slots,
    set_cookie,
    tab_slots,
)

if TYPE_CHECKING:
    from ._request import RequestContext
    from .engine import Auth

__all__ = ["HINT_MAX_AGE", "hint_cookie", "select_tab", "update_slots"]

HINT_MAX_AGE = 10
"""Seconds the tab hint lives: long enough for the navigation it was set for."""


def select_tab(ctx: RequestContext) -> None:
    """Serve the tab the request names: the tab header, else (navigations only) the hint."""
    header = ctx.headers.tab
    if header is not None:
        tab = header.decode("latin-1")
        if TAB_RE.match(tab):
            ctx.use_tab(tab)
        return
    if ctx.headers.cookie is not None and ctx.is_navigation():
        # Only navigations read the hint: a fetch or subresource of another tab must not
        # take (and consume) the hint a navigating tab just set.
        hint = ctx.cookies.get(HINT_COOKIE)
        if hint is not None and TAB_RE.match(hint):
            ctx.use_tab(hint)
            ctx.tab_from_hint = True


def update_slots(
    ctx: RequestContext,
    auth: Auth,
    *,
    add: str | None = None,
    remove: str | None = None,
    max_age: int | None,
) -> None:
    """Queue the slot-order cookie after adding or removing a slot, evicting the least recently
    issued slots beyond ``max_tab_slots`` (their refresh tokens go to ``ctx.evicted``)."""
    names, cookies = ctx.names, ctx.cookies
    order = [t for t in tab_slots(cookies, names) if t not in (add, remove)]
    if add is not None:
        order.append(add)
    limit = auth.config.max_tab_slots
    while len(order) > limit:
        old = names.for_tab(order.pop(0))
        refresh = cookies.get(old.refresh)
        if refresh:
            ctx.evicted = (*ctx.evicted, refresh)
        ctx.queue_cookie(clear_cookie(old.jwt, secure=old.secure))
        ctx.queue_cookie(clear_cookie(old.refresh, secure=old.secure))
    if not order:
        ctx.queue_cookie(clear_cookie(names.tabs, secure=names.secure))
        return
    if max_age is None:
        max_age = cookie_max_age(auth.config, None, auth.clock())
    ctx.queue_cookie(
        set_cookie(names.tabs, join_slots(order), secure=names.secure, max_age=max_age)
    )


def hint_cookie(ctx: RequestContext, status: int) -> tuple[bytes, bytes] | None:
    """The ``Set-Cookie`` for the tab hint after a response with ``status``, if any.

    A navigation that used the hint consumes it (cleared), so it cannot leak into another
    tab's next request; a navigation answered by a redirect re-arms it for the follow-up
    GET (form post → 303, protected page → sign-in page). Requests that did not use the hint
    (``fetch`` with the tab header, subresources) leave it for the navigation it was set for.
    """
    if ctx.tab is not None and 300 <= status < 400 and ctx.is_navigation():
        secure = ctx.facts.secure
        return set_cookie(
            HINT_COOKIE, ctx.tab, secure=secure, max_age=HINT_MAX_AGE, http_only=False
        )
    if ctx.tab_from_hint:
        return clear_cookie(HINT_COOKIE, secure=ctx.facts.secure, http_only=False)
    return None
