"""Sign-in: which providers run, the routes they own, and what turns a provider's outcome into a
session (second factors, an anonymous user's upgrade or merge, the session, the auth events).

:class:`~authbridge.Auth` builds one :class:`SignInFlow` and delegates ``sign_in_step``,
``conclude`` and ``delete_user`` to it; providers never see either.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

from .config import AuthConfig
from .errors import ConfigError, InvalidParams, SignInError
from .events import Events
from .providers import (
    AnonymousProvider,
    Outcome,
    Page,
    PasswordProvider,
    Provider,
    ProviderContext,
    ProviderRoute,
    Redirect,
    RouteHandler,
    RouteRequest,
    SecondFactor,
    SignedIn,
    SignInRequest,
    Started,
    default_amr,
)
from .sessions import SessionManager, Tokens
from .store.users import UserRepository

__all__ = [
    "AnonymousMergeHook",
    "OAuthButton",
    "ProviderRoutes",
    "SignInFlow",
    "SignInResult",
    "choose_providers",
]

logger = logging.getLogger("authbridge")

AnonymousMergeHook = Callable[[str, str], Awaitable[None]]
"""``async (anonymous_user_id, user_id)``: move the anonymous user's rows to ``user_id`` (it
signed in to an existing account); the anonymous user is deleted afterwards."""


@dataclass(frozen=True, slots=True)
class SignInResult:
    """A successful sign-in or sign-up."""

    tokens: Tokens
    """Access and refresh tokens of the new session."""
    redirect_to: str | None = None
    """Where the provider asked the browser to go next (e.g. an OAuth flow's ``redirectTo``)."""

    @property
    def user_id(self) -> str:
        """The signed-in user."""
        return self.tokens.user_id

    @property
    def session_id(self) -> str:
        """The new session."""
        return self.tokens.session_id


@dataclass(frozen=True, slots=True)
class OAuthButton:
    """An OAuth provider as a sign-in page shows it."""

    id: str
    """The provider id (``data-provider``)."""
    name: str
    """The button label."""


# -- which providers run -------------------------------------------------------------------------


def choose_providers(config: AuthConfig, given: Sequence[Provider] | None) -> list[Provider]:
    """``given`` (default: the password provider), plus those ``config`` turns on and ``given``
    does not name: OAuth (``config.oauth``), anonymous, TOTP and passkeys."""
    chosen: list[Provider] = list(given) if given is not None else [PasswordProvider()]
    taken = {p.id for p in chosen}
    if config.oauth:
        from .providers.oauth import OAuthProvider

        chosen += [OAuthProvider(c) for c in config.oauth if c.id not in taken]
        taken = {p.id for p in chosen}
    if config.anonymous and "anonymous" not in taken:
        chosen.append(AnonymousProvider())
    if config.totp and "totp" not in taken:
        from .providers.totp import TotpProvider

        chosen.append(TotpProvider())
    if config.passkeys and "passkey" not in taken:
        from .providers.passkeys import PasskeyProvider

        chosen.append(PasskeyProvider())
    return chosen


@dataclass(frozen=True, slots=True)
class ProviderRoutes:
    """The routes providers own, by path under the prefix, and the provider owning each."""

    routes: dict[str, ProviderRoute]
    owners: dict[str, str]

    @classmethod
    def of(cls, providers: Sequence[Provider]) -> ProviderRoutes:
        """Collect every provider's routes; their :class:`SignedIn` outcomes name the method.

        Raises:
            ConfigError: two providers claim the same path.
        """
        routes: dict[str, ProviderRoute] = {}
        owners: dict[str, str] = {}
        for p in providers:
            for route in p.routes():
                if route.path in routes:
                    raise ConfigError(f"two providers claim the route {route.path!r}")
                owners[route.path] = p.id
                routes[route.path] = dataclasses.replace(
                    route, handler=_naming_method(route.handler, p.id)
                )
        return cls(routes, owners)


# -- from outcome to session ---------------------------------------------------------------------


class SignInFlow:
    """Runs providers' sign-in steps and concludes them into sessions."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        users: UserRepository,
        events: Events,
        on_anonymous_merge: AnonymousMergeHook | None = None,
    ) -> None:
        self.providers = providers
        self._second_factors = [p for p in providers.values() if isinstance(p, SecondFactor)]
        self._users = users
        self._events = events
        self.on_anonymous_merge = on_anonymous_merge

    async def step(
        self,
        ctx: ProviderContext,
        sessions: SessionManager,
        provider: str,
        params: Mapping[str, Any],
        request: SignInRequest,
    ) -> SignInResult | Started | Redirect:
        """Run ``provider``'s sign-in (see :meth:`Auth.sign_in_step`).

        Raises:
            InvalidParams: unknown provider or malformed params.
            SignInError: the provider's error.
            StoreUnavailable: the database failed.
        """
        chosen = self.providers.get(provider)
        if chosen is None:
            configured = ", ".join(sorted(self.providers))
            raise InvalidParams(f"unknown provider; configured: {configured}")
        try:
            outcome = await chosen.sign_in(ctx, params, request)
        except SignInError as exc:
            await self._events.emit(
                "sign_in_failed",
                provider=provider,
                reason=exc.code,
                ip=request.ip,
                user_agent=request.user_agent,
            )
            raise
        return await self.conclude(ctx, sessions, _with_amr(outcome, provider), request, provider)

    async def conclude(
        self,
        ctx: ProviderContext,
        sessions: SessionManager,
        outcome: SignedIn | Started | Redirect,
        request: SignInRequest,
        provider: str | None,
    ) -> SignInResult | Started | Redirect:
        """A session for a :class:`SignedIn` outcome (see :meth:`Auth.conclude`).

        Raises:
            StoreUnavailable: the database failed.
        """
        if not isinstance(outcome, SignedIn):
            return outcome
        for gate in self._second_factors:
            step = await gate.second_factor(ctx, outcome, request)
            if step is not None:
                return step
        user_id = await self._absorb_anonymous(sessions, outcome, request, provider)
        tokens = await sessions.create(
            user_id, ip=request.ip, user_agent=request.user_agent, amr=outcome.amr
        )
        if request.session_id is not None:
            await sessions.revoke([request.session_id])
        fields = {"ip": request.ip, "user_agent": request.user_agent, "provider": provider}
        if outcome.linked is not None:
            await self._events.emit(
                "account_linked",
                user_id=user_id,
                session_id=tokens.session_id,
                identifier=outcome.linked,
                **fields,
            )
        await self._events.emit("sign_in", user_id=user_id, session_id=tokens.session_id, **fields)
        return SignInResult(tokens, redirect_to=outcome.redirect_to)

    async def _absorb_anonymous(
        self,
        sessions: SessionManager,
        outcome: SignedIn,
        request: SignInRequest,
        provider: str | None,
    ) -> str:
        """The user the new session belongs to, after an anonymous user's upgrade or merge."""
        anonymous = request.user_id
        if anonymous is None or anonymous == outcome.user_id or provider == "anonymous":
            if anonymous is not None and anonymous == outcome.user_id and provider != "anonymous":
                # A method attached to the current user (e.g. an OAuth link): no longer anonymous.
                await self._users.clear_anonymous(anonymous)
            return outcome.user_id
        if not await self._users.is_anonymous(anonymous):
            return outcome.user_id
        fields = {"ip": request.ip, "user_agent": request.user_agent, "provider": provider}
        if outcome.new_user and await self._users.upgrade_anonymous(anonymous, outcome.user_id):
            await self._events.emit("anonymous_upgraded", user_id=anonymous, **fields)
            return anonymous
        # The identity belongs to someone else: they sign in as themselves and the app moves
        # what the anonymous user made.
        if self.on_anonymous_merge is not None:
            try:
                await self.on_anonymous_merge(anonymous, outcome.user_id)
            except Exception:
                logger.exception("on_anonymous_merge failed; the anonymous user is kept")
                return outcome.user_id
        await self.delete_user(sessions, anonymous, reason="anonymous_merged", **fields)
        return outcome.user_id

    async def delete_user(
        self, sessions: SessionManager, user_id: str, **fields: str | None
    ) -> bool:
        """End the user's sessions, delete it, record ``account_deleted`` (see
        :meth:`Auth.delete_user`).

        Raises:
            StoreUnavailable: the database failed.
        """
        await sessions.revoke_user_sessions(user_id)
        deleted = await self._users.delete(user_id)
        if deleted:
            await self._events.emit("account_deleted", user_id=user_id, **fields)
        return deleted


class EndUserSessions:
    """The session operations providers get (:class:`~authbridge.providers.ProviderSessions`)."""

    def __init__(self, sessions: Callable[[], SessionManager]) -> None:
        self._sessions = sessions

    async def end_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        """End every session of ``user_id`` but ``keep``.

        Raises:
            StoreUnavailable: the database failed.
        """
        return await self._sessions().revoke_user_sessions(user_id, keep=keep)


@overload
def _with_amr(outcome: Outcome, provider_id: str) -> Outcome: ...
@overload
def _with_amr(outcome: Outcome | Page, provider_id: str) -> Outcome | Page: ...
def _with_amr(outcome: Outcome | Page, provider_id: str) -> Outcome | Page:
    """``outcome``, with the provider's default ``amr`` when a :class:`SignedIn` names none."""
    if isinstance(outcome, SignedIn) and not outcome.amr:
        return dataclasses.replace(outcome, amr=default_amr(provider_id))
    return outcome


def _naming_method(handler: RouteHandler, provider_id: str) -> RouteHandler:
    """A provider route whose :class:`SignedIn` outcomes name how the user authenticated."""

    async def named(ctx: ProviderContext, request: RouteRequest) -> Outcome | Page:
        return _with_amr(await handler(ctx, request), provider_id)

    return named
