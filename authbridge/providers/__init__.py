"""Sign-in providers: the interface every sign-in method implements.

A provider turns sign-in params into an *outcome* and never sees :class:`~authbridge.Auth`. It
receives a narrow :class:`ProviderContext` (repositories, hasher, limiter, mailer, config, clock,
the session operations a provider legitimately needs) and a per-request :class:`SignInRequest`
(client facts, the current user if any, the browser's cookies, a way to set cookies). It holds no
SQL: the repositories in :mod:`authbridge.store` do.

Outcomes, mapped by the endpoints to DESIGN §17.2's wire shapes:

* :class:`SignedIn` → a session is created: ``{"signedIn": true, "userId", "sessionId"}``
  (forms: 303 to ``redirectTo``).
* :class:`Started` → ``{"started": true}`` (plus ``"factor"`` when a second factor is needed):
  a code or link was sent; the answer is the same whether or not the account exists.
* :class:`Redirect` → ``{"redirect": url}`` (forms: 303 to ``url``), e.g. to an OAuth server.

Errors are exceptions with stable codes (:mod:`authbridge.errors`).

A provider may also own HTTP routes under the auth prefix (an OAuth ``callback/<id>``, the email
``email/confirm`` page): :meth:`Provider.routes` returns :class:`ProviderRoute` values and the
endpoints dispatch to them, so a new sign-in method adds no code to the endpoints.

Rate limiting happens in one place: a provider names its buckets and wraps the check in
``async with ctx.limiter.attempt(...) as attempt: ...; attempt.succeed()`` (see
:class:`Limiter`).
"""

from __future__ import annotations

from .anonymous import AnonymousProvider
from .base import (
    DEFAULT_AMR,
    Attempt,
    CookieToSet,
    Limiter,
    Outcome,
    Page,
    Provider,
    ProviderContext,
    ProviderRoute,
    ProviderSessions,
    Redirect,
    RouteHandler,
    RouteRequest,
    SameSite,
    SecondFactor,
    SignedIn,
    SignInRequest,
    Started,
    default_amr,
    email_bucket_name,
    normalize_email,
    str_param,
)
from .password import PasswordProvider

__all__ = [
    "DEFAULT_AMR",
    "AnonymousProvider",
    "Attempt",
    "CookieToSet",
    "Limiter",
    "Outcome",
    "Page",
    "PasswordProvider",
    "Provider",
    "ProviderContext",
    "ProviderRoute",
    "ProviderSessions",
    "Redirect",
    "RouteHandler",
    "RouteRequest",
    "SameSite",
    "SecondFactor",
    "SignInRequest",
    "SignedIn",
    "Started",
    "default_amr",
    "email_bucket_name",
    "normalize_email",
    "str_param",
]
