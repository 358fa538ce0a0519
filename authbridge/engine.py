"""The :class:`Auth` engine: store, keys, sessions and providers behind one object.

Requests reach it through :class:`~authbridge.AuthMiddleware`; code outside a request (admin
tasks, the CLI, tests) calls its methods directly. ``Auth`` holds the parts and their lifecycle;
the work is done where it belongs: :mod:`authbridge.startup` (checks and keys at open),
:mod:`authbridge.signin` (providers, outcome to session), :mod:`authbridge.sessions` and
:mod:`authbridge.tokens`, :mod:`authbridge.background` (revocation poll, cleanup).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal

import jinja2

# The users' table extension points (Auth(user_columns=..., metadata=...)): the only SQLAlchemy
# names outside authbridge.store, as types of what the app passes in.
from sqlalchemy import Column, MetaData

from .background import BackgroundTasks, CleanupReport, cleanup_all, cleanup_anonymous
from .claims import ClaimsHook, ClaimsRunner
from .config import AuthConfig
from .devices import KnownDevices
from .errors import ConfigError, InvalidParams, StoreUnavailable
from .events import EventHook, Events
from .mail import EmailSender, MessageTemplates
from .otp import CodeDelivery, resolve_mailer
from .passwords import PasswordHasher
from .providers import Provider, ProviderContext, Redirect, SignedIn, SignInRequest, Started
from .ratelimit import RateLimiter
from .revocations import RevocationSet
from .sessions import ClaimsFactory, SessionInfo, SessionManager, Tokens
from .signin import (
    AnonymousMergeHook,
    EndUserSessions,
    OAuthButton,
    ProviderRoutes,
    SignInFlow,
    SignInResult,
    choose_providers,
)
from .startup import (
    check_imported_hashes,
    check_mailer,
    check_tables,
    load_keys,
    require_keys,
    warn_about_plain_http,
)
from .store import LoopLocalLock, Store
from .store.accounts import AccountRepository
from .store.dialect import is_sqlite
from .store.factors import FactorRepository
from .store.oauth import OAuthRepository
from .store.passkeys import PasskeyRepository
from .store.users import User, UserRepository
from .tokens import AccessToken, KeySet, TokenIssuer, VerifyCache, openid_configuration
from .trusted import RemoteToken, TrustedIssuers

__all__ = [
    "AnonymousMergeHook",
    "Auth",
    "Clock",
    "OAuthButton",
    "SignInResult",
    "User",
    "UserHook",
    "utc_now",
]

logger = logging.getLogger("authbridge")

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware UTC. Inject one in tests."""

UserHook = Callable[[str], Awaitable[None]]
"""``async (user_id)``: runs before a user is deleted; raising refuses the deletion."""

_NOT_OPEN = "Auth is not open: await auth.open() or use AuthMiddleware"


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(timezone.utc)


# The same clock with no Python frame: read on every request (the engine uses it in place of
# the default ``utc_now``).
_UTC_NOW: Clock = functools.partial(datetime.now, timezone.utc)


class Auth:
    """The authentication engine.

    Args:
        config: settings (default: :meth:`AuthConfig.from_env`).
        clock: time source (inject a fake one in tests).
        user_columns: extra columns for the ``users`` table.
        metadata: SQLAlchemy metadata to define the auth tables on (share the app's schema).
        claims: ``async (user, session) -> claims`` signed into every access token (at sign-in
            and at each refresh); see :mod:`authbridge.claims`.
        custom_claims: the older ``(user_id, session_id) -> claims`` factory (sync or async).
        providers: sign-in providers (default: the password provider; the anonymous provider is
            added when ``config.anonymous`` is on).
        on_event: called with every :class:`~authbridge.events.AuthEvent` (sync or async);
            events are logged at INFO either way.
        on_anonymous_merge: moves an anonymous user's data when it signs in to an existing
            account (see :data:`AnonymousMergeHook`).
        before_delete_user: runs before an account is deleted (see :data:`UserHook`).
        create_tables: create missing tables when the engine opens (demo apps, tests).
        engine_options: extra keyword arguments for SQLAlchemy's ``create_async_engine``.
        mailer: where one-time codes go (default: from ``config.email``, see
            :func:`~authbridge.otp.resolve_mailer`).
        email_templates: a Jinja2 loader whose ``email/<purpose>.txt|html`` templates override
            the packaged messages.

    Raises:
        ConfigError: both ``claims`` and ``custom_claims``, a ``claims`` hook that is not async,
            two providers claiming one route, or this site's own issuer listed in
            ``trusted_issuers``.
    """

    def __init__(
        self,
        config: AuthConfig | None = None,
        *,
        clock: Clock = utc_now,
        user_columns: Iterable[Column[Any]] = (),
        metadata: MetaData | None = None,
        custom_claims: ClaimsFactory | None = None,
        claims: ClaimsHook | None = None,
        providers: Sequence[Provider] | None = None,
        create_tables: bool = False,
        engine_options: dict[str, Any] | None = None,
        on_event: EventHook | None = None,
        on_anonymous_merge: AnonymousMergeHook | None = None,
        before_delete_user: UserHook | None = None,
        mailer: EmailSender | None = None,
        email_templates: jinja2.BaseLoader | None = None,
    ) -> None:
        if claims is not None and custom_claims is not None:
            raise ConfigError("pass claims= or custom_claims=, not both")
        self.config = config = config if config is not None else AuthConfig.from_env()
        self.clock = _UTC_NOW if clock is utc_now else clock
        self.store = store = Store(
            config.database_url,
            metadata=metadata,
            user_columns=user_columns,
            engine_options=engine_options,
        )
        self.passwords = PasswordHasher(config.password)
        self.rate_limiter = RateLimiter(store, config.rate_limit, clock)
        self.revocations = RevocationSet(clock)
        self.users = UserRepository(store)
        """The ``users`` table's queries."""
        self.accounts = AccountRepository(store)
        """The ``auth_accounts`` table's queries."""
        self.factors = FactorRepository(store)
        """Second factors (TOTP secrets, recovery codes)."""
        self.passkeys = PasskeyRepository(store)
        """Passkeys and their challenges."""
        self.oauth = OAuthRepository(store, lambda: self.keys.private_key_material())
        self.events = Events(on_event, clock)
        """The auth event stream (:mod:`authbridge.events`)."""
        self.before_delete_user = before_delete_user
        self.email = CodeDelivery(
            store, config, clock, resolve_mailer(config, mailer), MessageTemplates(email_templates)
        )
        """Code and magic-link delivery (email / SMS flows)."""
        chosen = choose_providers(config, providers)
        self.providers: dict[str, Provider] = {p.id: p for p in chosen}
        routes = ProviderRoutes.of(chosen)
        self.provider_routes = routes.routes
        """Routes the providers own, by path under the prefix."""
        self.route_owners = routes.owners
        """The provider id owning each of :attr:`provider_routes` (for its auth events)."""
        self._flow = SignInFlow(
            self.providers,
            users=self.users,
            events=self.events,
            on_anonymous_merge=on_anonymous_merge,
        )
        self._custom_claims = custom_claims
        self._claims = ClaimsRunner(claims, store) if claims is not None else None
        self._create_tables = create_tables
        self._issuer: TokenIssuer | None = None
        self._sessions: SessionManager | None = None
        self._verified = VerifyCache(
            None, self.revocations.session_ids, self.clock, closed_message=_NOT_OPEN
        )
        self._open_lock = LoopLocalLock()
        self._background = BackgroundTasks(
            store,
            self.revocations,
            interval=config.revocation_poll_interval.total_seconds(),
            listen=config.revocation_notify and not is_sqlite(config.database_url),
            now_and_then=self._upkeep,
        )
        self.devices: KnownDevices | None = None
        """Signs the known-device cookie (after :meth:`open`)."""
        self.trusted_issuers: TrustedIssuers | None = None
        """Verifies bearer tokens of :attr:`AuthConfig.trusted_issuers` (``None`` without any)."""
        if config.trusted_issuers:
            self.trusted_issuers = TrustedIssuers(
                config.trusted_issuers, own_issuer=config.issuer, clock=clock
            )

    @property
    def on_anonymous_merge(self) -> AnonymousMergeHook | None:
        """Moves an anonymous user's data when it signs in to an existing account."""
        return self._flow.on_anonymous_merge

    @on_anonymous_merge.setter
    def on_anonymous_merge(self, hook: AnonymousMergeHook | None) -> None:
        self._flow.on_anonymous_merge = hook

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True once :meth:`open` has loaded the keys."""
        return self._issuer is not None

    async def open(self) -> None:
        """Connect, create tables if asked, load keys and the revocation set. Idempotent.

        Raises:
            ConfigError: no usable keys, or email sign-in without a mail sender.
            StoreUnavailable: the database failed.
        """
        if self._issuer is not None:
            return
        async with self._open_lock.get():
            if self._issuer is not None:
                return
            require_keys(self.config)  # before touching the database: the likelier mistake
            check_mailer(self.config, self.providers, self.email.mailer)
            if self._create_tables:
                await self.store.create_tables()
            else:
                await check_tables(self.config, self.store)
            keys = await load_keys(self.config, self.store, self.clock())
            issuer = TokenIssuer(
                keys,
                issuer=self.config.issuer,
                audience=self.config.audience,
                lifetime=self.config.jwt_duration,
                clock=self.clock,
            )
            self._sessions = SessionManager(
                self.store,
                issuer,
                self.config,
                self.clock,
                self.revocations,
                self._custom_claims,
                claims=self._claims,
                on_reuse=self._reuse_detected,
            )
            try:
                await self.revocations.poll(self.store)
            except StoreUnavailable:
                # Serve anyway; the background poller catches up once the database is back.
                logger.error("authbridge could not load revocations at startup; will retry")
            self._verified.open(issuer)
            self.devices = KnownDevices(keys.derived_secrets("known-device"))
            await check_imported_hashes(self.passwords, self.accounts)
            self._issuer = issuer
            warn_about_plain_http(self.config)

    async def _reuse_detected(self, user_id: str, session_id: str) -> None:
        await self.events.emit("refresh_token_reused", user_id=user_id, session_id=session_id)

    async def _upkeep(self) -> None:
        """What the background task does now and then besides polling."""
        await self.cleanup(max_batches=5)
        await check_imported_hashes(self.passwords, self.accounts)

    async def close(self) -> None:
        """Stop background work and release the database."""
        await self.stop_background()
        if self.trusted_issuers is not None:
            await self.trusted_issuers.aclose()
        await self.store.close()
        self.passwords.close()
        self._issuer = self._sessions = None
        self._verified.close()

    async def __aenter__(self) -> Auth:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_background(self) -> None:
        """Start polling revocations (and cleaning up now and then) on the running loop; on
        PostgreSQL also listen for them (unless ``revocation_notify`` is off)."""
        self._background.start()

    async def stop_background(self) -> None:
        """Stop the background tasks, if running."""
        await self._background.stop()

    async def create_tables(self) -> None:
        """Create every missing auth table (``authbridge db init``).

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.store.create_tables()

    # -- components ------------------------------------------------------------------------------

    @property
    def provider_context(self) -> ProviderContext:
        """What providers get: repositories, hasher, limiter, config, clock, session operations,
        the event stream (after :meth:`open`; built from the current components on each
        access)."""
        return ProviderContext(
            config=self.config,
            clock=self.clock,
            users=self.users,
            accounts=self.accounts,
            hasher=self.passwords,
            limiter=self.rate_limiter,
            sessions=EndUserSessions(lambda: self.sessions),
            oauth=self.oauth,
            mailer=self.email.mailer,
            codes=self.email,
            factors=self.factors,
            passkeys=self.passkeys,
            derive_secrets=self.keys.derived_secrets,
            events=self.events,
        )

    def oauth_providers(self) -> list[OAuthButton]:
        """The OAuth providers, for sign-in pages: ``[{"id", "name"}]`` in configuration order."""
        from .providers.oauth import OAuthProvider

        return [
            OAuthButton(p.id, p.name)
            for p in self.providers.values()
            if isinstance(p, OAuthProvider)
        ]

    async def provider_access_token(self, user_id: str, provider: str) -> str | None:
        """A valid access token for ``provider``'s API on behalf of ``user_id``, refreshed first
        when it expires within a minute; ``None`` when none is stored (the provider is not set to
        ``store_provider_tokens``, or the user never signed in with it).

        Raises:
            InvalidParams: ``provider`` is not an OAuth provider.
            OAuthProviderError: the token expired and could not be refreshed.
            StoreUnavailable: the database failed.
        """
        from .providers.oauth import OAuthProvider

        await self.open()
        chosen = self.providers.get(provider)
        if not isinstance(chosen, OAuthProvider):
            raise InvalidParams(f"{provider!r} is not an OAuth provider")
        return await chosen.access_token(self.provider_context, user_id)

    @property
    def issuer(self) -> TokenIssuer:
        """The token issuer (after :meth:`open`)."""
        if self._issuer is None:
            raise RuntimeError(_NOT_OPEN)
        return self._issuer

    @property
    def verify_cache(self) -> VerifyCache:
        """The verify-once cache behind :meth:`verify_token`. It lives as long as the engine
        (empty while closed), so a hot path may hold its ``verify`` method."""
        return self._verified

    @property
    def sessions(self) -> SessionManager:
        """The session manager (after :meth:`open`)."""
        if self._sessions is None:
            raise RuntimeError(_NOT_OPEN)
        return self._sessions

    @property
    def keys(self) -> KeySet:
        """The signing / verification keys (after :meth:`open`)."""
        return self.issuer.keys

    # -- tokens ----------------------------------------------------------------------------------

    def verify_token(self, token: str, *, now: datetime | None = None) -> AccessToken:
        """Verify an access token: signature, claims, expiry and revocation. No database access.

        Repeat verifications of the same token are served from a bounded cache; expiry and
        revocation are re-checked on every call. ``now`` saves a clock read when the caller has
        one.

        Raises:
            TokenError: with a ``reason`` (``expired``, ``revoked``, ``invalid_signature``, ...).
            RuntimeError: the engine is not open.
        """
        return self._verified.verify(token, now=now)

    async def verify_bearer(
        self, token: str, *, now: datetime | None = None
    ) -> AccessToken | RemoteToken:
        """Verify a bearer token: one of ours (:meth:`verify_token`), or one from a trusted
        issuer (:class:`~authbridge.trusted.RemoteToken`, keys fetched without blocking).

        Raises:
            TokenError: with a ``reason`` (``issuer_unavailable`` when a trusted issuer's keys
                cannot be fetched).
        """
        trusted = self.trusted_issuers
        if trusted is not None and token not in self._verified:
            remote = await trusted.verify(token, now=now)
            if remote is not None:
                return remote
        return self.verify_token(token, now=now)

    def remember_token(self, access: AccessToken) -> None:
        """Seed the verification cache with a token this process just issued."""
        if self._issuer is not None:
            self._verified.remember(access)

    def jwks(self) -> dict[str, Any]:
        """The public JWK set (``/.well-known/jwks.json``)."""
        return self.keys.jwks()

    def openid_configuration(self) -> dict[str, Any]:
        """The discovery document (``/.well-known/openid-configuration``)."""
        return openid_configuration(self.config.issuer, self.config.route_prefix, self.keys)

    # -- sign-in and sessions --------------------------------------------------------------------

    async def sign_in(
        self,
        provider: str,
        params: Mapping[str, Any],
        *,
        ip: str | None = None,
        user_agent: str | None = None,
        replace_session: str | None = None,
    ) -> SignInResult:
        """Authenticate with ``provider`` and start a session (for steps that start no session,
        such as an email code or an OAuth redirect, use :meth:`sign_in_step`).

        Args:
            replace_session: the caller's current session, ended once the new one exists.

        Raises:
            InvalidParams: unknown provider, malformed params, or a step that starts no session.
            SignInError: the provider's error (``InvalidCredentials``, ``TooManyAttempts``, ...).
            StoreUnavailable: the database failed.
        """
        request = SignInRequest(ip=ip, user_agent=user_agent, session_id=replace_session)
        result = await self.sign_in_step(provider, params, request)
        if not isinstance(result, SignInResult):
            raise InvalidParams(
                f"provider {provider!r} answered {type(result).__name__}, not a session: "
                "use sign_in_step"
            )
        return result

    async def sign_in_step(
        self, provider: str, params: Mapping[str, Any], request: SignInRequest
    ) -> SignInResult | Started | Redirect:
        """Run one step of ``provider``'s sign-in: a session when it signs the user in, else the
        step it started (a code sent, an OAuth redirect). ``request.session_id`` (the browser's
        current session) ends once a new session exists.

        Raises:
            InvalidParams: unknown provider or malformed params.
            SignInError: the provider's error (``InvalidCredentials``, ``TooManyAttempts``, ...).
            StoreUnavailable: the database failed.
        """
        await self.open()
        return await self._flow.step(
            self.provider_context, self.sessions, provider, params, request
        )

    async def conclude(
        self,
        outcome: SignedIn | Started | Redirect,
        request: SignInRequest,
        *,
        provider: str | None = None,
    ) -> SignInResult | Started | Redirect:
        """Turn a provider's outcome into a session when it is :class:`SignedIn` (ending
        ``request.session_id``; the session records now and ``outcome.amr`` as when and how the
        user authenticated); other outcomes pass through.

        When the browser was signed in anonymously (``request.user_id``), a sign-up upgrades
        that user (same id, ``is_anonymous`` cleared); a sign-in to an existing user hands the
        anonymous user's data to ``on_anonymous_merge`` and deletes the anonymous user.

        Raises:
            StoreUnavailable: the database failed.
        """
        if not isinstance(outcome, SignedIn):
            return outcome
        await self.open()
        return await self._flow.conclude(
            self.provider_context, self.sessions, outcome, request, provider
        )

    async def delete_user(
        self,
        user_id: str,
        *,
        reason: str | None = None,
        session_id: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        provider: str | None = None,
    ) -> bool:
        """Delete a user: end its sessions (their access tokens are refused from now on), then
        delete the user and every row keyed to it (accounts, sessions, refresh tokens, codes,
        the app's tables with a foreign key to ``users.id`` or a ``user_id`` column). Does not
        run ``before_delete_user`` (the account endpoint does). Records ``account_deleted``.
        Returns whether the user existed.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.open()
        return await self._flow.delete_user(
            self.sessions,
            user_id,
            session_id=session_id,
            ip=ip,
            user_agent=user_agent,
            provider=provider,
            reason=reason,
        )

    async def sign_up_with_password(
        self, email: str, password: str, *, ip: str | None = None
    ) -> SignInResult:
        """Shortcut for ``sign_in("password", {"flow": "signUp", ...})``.

        Raises:
            SignInError: ``AccountExists``, ``InvalidPassword``, ``InvalidEmail``, ...
        """
        return await self.sign_in(
            "password", {"flow": "signUp", "email": email, "password": password}, ip=ip
        )

    async def sign_in_with_password(
        self, email: str, password: str, *, ip: str | None = None
    ) -> SignInResult:
        """Shortcut for ``sign_in("password", {"flow": "signIn", ...})``.

        Raises:
            SignInError: ``InvalidCredentials``, ``TooManyAttempts``, ...
        """
        return await self.sign_in(
            "password", {"flow": "signIn", "email": email, "password": password}, ip=ip
        )

    async def refresh(self, refresh_token: str) -> Tokens:
        """Rotate a refresh token (see :mod:`authbridge.sessions`).

        Raises:
            RefreshError: invalid, expired or reused token.
            StoreUnavailable: the database failed.
        """
        await self.open()
        return await self.sessions.refresh(refresh_token)

    async def sign_out(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        kind: Literal["sign_out", "session_revoked"] = "sign_out",
    ) -> None:
        """End one session; its access tokens are refused from now on. Records a ``kind``
        event.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.open()
        await self.sessions.revoke([session_id])
        await self.events.emit(
            kind, user_id=user_id, session_id=session_id, ip=ip, user_agent=user_agent
        )

    async def sign_out_refresh_tokens(self, refresh_tokens: Sequence[str]) -> int:
        """End the sessions of these refresh tokens (checked against their stored hashes; the
        ``per_tab`` middleware calls it for the slots it evicts). Returns how many.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.open()
        return await self.sessions.revoke_by_refresh_tokens(refresh_tokens)

    async def sign_out_everywhere(self, user_id: str) -> int:
        """End every session of a user. Returns how many.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.open()
        return await self.sessions.revoke_user_sessions(user_id)

    async def sign_out_other_sessions(self, user_id: str, session_id: str) -> int:
        """End every session of a user but ``session_id``. Returns how many.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.open()
        return await self.sessions.revoke_user_sessions(user_id, keep=session_id)

    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions, most recently active first.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.open()
        return await self.sessions.list_sessions(user_id)

    async def get_session(self, session_id: str) -> SessionInfo | None:
        """One live session.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.open()
        return await self.sessions.get(session_id)

    async def get_user(self, user_id: str) -> User | None:
        """The ``users`` row (one query).

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.open()
        return await self.users.get(user_id)

    async def poll_revocations(self) -> int:
        """Load new revocations from the database now (the background task does this every
        ``revocation_poll_interval``). Returns the number of rows read.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.open()
        return await self.revocations.poll(self.store)

    async def cleanup(
        self,
        *,
        batch_size: int = 1000,
        max_batches: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> CleanupReport:
        """Delete used or expired codes (``report.verification_codes``), expired sessions,
        tokens, revocations and idle rate-limit rows, in batches of ``batch_size`` (at most
        ``max_batches`` of each kind); then anonymous users idle for ``anonymous_idle``
        (``report.anonymous_users``), expired passkey challenges and unconfirmed TOTP
        enrolments (``passkey_challenges``, ``totp_enrolments``). ``progress`` is called as
        batches finish with the rows deleted so far.

        Raises:
            StoreUnavailable: the database failed.
        """
        return await cleanup_all(
            self.store,
            self.config,
            self.clock(),
            codes=self.email.repository,
            anonymous=lambda: self.cleanup_anonymous(
                batch_size=batch_size, max_batches=max_batches
            ),
            batch_size=batch_size,
            max_batches=max_batches,
            progress=progress,
        )

    async def cleanup_anonymous(
        self, *, batch_size: int = 1000, max_batches: int | None = None
    ) -> int:
        """Delete anonymous users that have had no active session for ``anonymous_idle`` (and
        everything keyed to them). Returns how many.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.open()
        idle_since = self.clock() - self.config.anonymous_idle
        return await cleanup_anonymous(
            self.users, self.sessions, idle_since, batch_size=batch_size, max_batches=max_batches
        )
