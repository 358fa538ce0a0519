"""The :class:`Auth` engine: store, keys, sessions and providers behind one object.

Requests reach it through :class:`~authbridge.AuthMiddleware`; code outside a request (admin
tasks, the CLI, tests) calls its methods directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, overload
from urllib.parse import urlsplit

import jinja2
from sqlalchemy import Column, MetaData  # the users' table extension points

from .claims import ClaimsHook, ClaimsRunner
from .config import AuthConfig
from .cookies import is_development_host
from .devices import KnownDevices
from .errors import ConfigError, InvalidParams, SignInError, StoreUnavailable
from .events import EventHook, Events
from .mail import EmailSender, MessageTemplates
from .otp import CodeDelivery, resolve_mailer
from .passwords import PasswordHasher
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
from .ratelimit import RateLimiter
from .revocations import RevocationListener, RevocationSet
from .sessions import ClaimsFactory, CleanupReport, SessionInfo, SessionManager, Tokens, cleanup
from .store import LoopLocalLock, Store, redact_url
from .store.accounts import AccountRepository
from .store.dialect import is_sqlite
from .store.factors import FactorRepository
from .store.keys import KeyRepository
from .store.oauth import OAuthRepository
from .store.passkeys import PasskeyRepository
from .store.users import User, UserRepository
from .tokens import (
    AccessToken,
    KeySet,
    TokenIssuer,
    VerifyCache,
    generate_private_key_pem,
    openid_configuration,
)
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

OPPORTUNISTIC_CLEANUP_EVERY = 600.0

AnonymousMergeHook = Callable[[str, str], Awaitable[None]]
"""``async (anonymous_user_id, user_id)``: move the anonymous user's rows to ``user_id`` (it
signed in to an existing account); the anonymous user is deleted afterwards."""

UserHook = Callable[[str], Awaitable[None]]
"""``async (user_id)``: runs before a user is deleted; raising refuses the deletion."""


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class OAuthButton:
    """An OAuth provider as a sign-in page shows it."""

    id: str
    """The provider id (``data-provider``)."""
    name: str
    """The button label."""


def _oauth_providers(config: AuthConfig, taken: set[str]) -> list[Provider]:
    """Providers for ``config.oauth`` entries not already given explicitly."""
    if not config.oauth:
        return []
    from .providers.oauth import OAuthProvider

    return [OAuthProvider(c) for c in config.oauth if c.id not in taken]


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
            or this site's own issuer listed in ``trusted_issuers``.
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
        self.config = config if config is not None else AuthConfig.from_env()
        self.clock = clock
        self.store = Store(
            self.config.database_url,
            metadata=metadata,
            user_columns=user_columns,
            engine_options=engine_options,
        )
        self.passwords = PasswordHasher(self.config.password)
        self.rate_limiter = RateLimiter(self.store, self.config.rate_limit, clock)
        self.revocations = RevocationSet(clock)
        self.users = UserRepository(self.store)
        """The ``users`` table's queries."""
        provider_list: list[Provider] = (
            list(providers) if providers is not None else [PasswordProvider()]
        )
        provider_list += _oauth_providers(self.config, {p.id for p in provider_list})
        if self.config.anonymous and not any(p.id == "anonymous" for p in provider_list):
            provider_list.append(AnonymousProvider())
        self.events = Events(on_event, clock)
        """The auth event stream (:mod:`authbridge.events`)."""
        self.on_anonymous_merge = on_anonymous_merge
        self.before_delete_user = before_delete_user
        provider_list += _factor_providers(self.config, {p.id for p in provider_list})
        self._second_factors = [p for p in provider_list if isinstance(p, SecondFactor)]
        self.factors = FactorRepository(self.store)
        """Second factors (TOTP secrets, recovery codes)."""
        self.passkeys = PasskeyRepository(self.store)
        """Passkeys and their challenges."""
        self.providers: dict[str, Provider] = {p.id: p for p in provider_list}
        self.oauth = OAuthRepository(self.store, self._secret_key_material)
        self.accounts = AccountRepository(self.store)
        """The ``auth_accounts`` table's queries."""
        self.email = CodeDelivery(
            self.store,
            self.config,
            clock,
            resolve_mailer(self.config, mailer),
            MessageTemplates(email_templates),
        )
        """Code and magic-link delivery (email / SMS flows)."""
        self.provider_routes: dict[str, ProviderRoute] = {}
        """Routes the providers own, by path under the prefix."""
        self.route_owners: dict[str, str] = {}
        """The provider id owning each of :attr:`provider_routes` (for its auth events)."""
        for p in provider_list:
            for route in p.routes():
                if route.path in self.provider_routes:
                    raise ConfigError(f"two providers claim the route {route.path!r}")
                self.route_owners[route.path] = p.id
                self.provider_routes[route.path] = dataclasses.replace(
                    route, handler=_naming_method(route.handler, p.id)
                )
        self._custom_claims = custom_claims
        if claims is not None and custom_claims is not None:
            raise ConfigError("pass claims= or custom_claims=, not both")
        self._claims = ClaimsRunner(claims, self.store) if claims is not None else None
        self._create_tables = create_tables
        self._issuer: TokenIssuer | None = None
        self._sessions: SessionManager | None = None
        self._open_lock = LoopLocalLock()
        self._background: asyncio.Task[None] | None = None
        self._verified: VerifyCache | None = None
        self.devices: KnownDevices | None = None
        """Signs the known-device cookie (after :meth:`open`)."""
        self._listener: asyncio.Task[None] | None = None
        self.trusted_issuers: TrustedIssuers | None = None
        """Verifies bearer tokens of :attr:`AuthConfig.trusted_issuers` (``None`` without any)."""
        if self.config.trusted_issuers:
            self.trusted_issuers = TrustedIssuers(
                self.config.trusted_issuers,
                own_issuer=self.config.issuer,
                clock=clock,
            )

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True once :meth:`open` has loaded the keys."""
        return self._issuer is not None

    async def open(self) -> None:
        """Connect, create tables if asked, load keys and the revocation set. Idempotent.

        Raises:
            ConfigError: no usable keys.
            StoreUnavailable: the database failed.
        """
        if self._issuer is not None:
            return
        async with self._open_lock.get():
            if self._issuer is not None:
                return
            self._require_keys()  # before touching the database: the likelier mistake
            needs_mail = "email" in self.providers or self.config.email.verification != "off"
            if needs_mail and self.email.mailer is None:
                raise ConfigError(
                    "email sign-in / verification needs AUTHBRIDGE_SMTP_URL with a server database "
                    "(or AUTHBRIDGE_EMAIL_CONSOLE=true to log messages, development only)"
                )
            if self._create_tables:
                await self.store.create_tables()
            else:
                await self._check_tables()
            keys = await self._load_keys()
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
            self._verified = VerifyCache(issuer, self.revocations, self.clock)
            self.devices = KnownDevices(keys.derived_secrets("known-device"))
            await self._check_imported_hashes()
            self._issuer = issuer
            self._warn_about_plain_http()

    async def _reuse_detected(self, user_id: str, session_id: str) -> None:
        await self.events.emit("refresh_token_reused", user_id=user_id, session_id=session_id)

    async def close(self) -> None:
        """Stop background work and release the database."""
        await self.stop_background()
        if self.trusted_issuers is not None:
            await self.trusted_issuers.aclose()
        await self.store.close()
        self.passwords.close()
        self._issuer = None
        self._sessions = None
        self._verified = None

    async def __aenter__(self) -> Auth:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_background(self) -> None:
        """Start polling revocations (and cleaning up now and then) on the running loop; on
        PostgreSQL also listen for them (unless ``revocation_notify`` is off)."""
        loop = asyncio.get_running_loop()
        if self._background is None or self._background.done():
            self._background = loop.create_task(self._background_loop())
        listen = self.config.revocation_notify and not is_sqlite(self.config.database_url)
        if listen and (self._listener is None or self._listener.done()):
            listener = RevocationListener(self.revocations, self.store)
            self._listener = loop.create_task(listener.run())

    async def stop_background(self) -> None:
        """Stop the background tasks, if running."""
        for task in (self._background, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._background = self._listener = None

    async def _background_loop(self) -> None:
        interval = self.config.revocation_poll_interval.total_seconds()
        next_cleanup = asyncio.get_running_loop().time() + random.uniform(10, 60)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.revocations.poll(self.store)
                if asyncio.get_running_loop().time() >= next_cleanup:
                    next_cleanup += OPPORTUNISTIC_CLEANUP_EVERY
                    await self.cleanup(max_batches=5)
                    await self._check_imported_hashes()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("authbridge background poll failed; retrying")

    def _warn_about_plain_http(self) -> None:
        site = urlsplit(self.config.site_url)
        if site.scheme == "http" and not is_development_host(site.hostname or ""):
            logger.warning(
                "AUTHBRIDGE_SITE_URL is %s: authbridge marks cookies Secure on every host but "
                "localhost, and browsers do not send Secure cookies back over plain http, so "
                "nobody will stay signed in; serve the site over https (or use "
                "authbridge.testing in tests)",
                self.config.site_url,
            )

    async def _check_tables(self) -> None:
        """Fail with the fix when the schema is missing; the embedded SQLite database is a
        development one, so a brand-new file simply gets its tables."""
        try:
            missing = await self.store.missing_tables()
        except StoreUnavailable:
            return  # the database is down: open anyway, like the revocation poll below
        if not missing:
            return
        where = redact_url(self.config.database_url)
        if is_sqlite(self.config.database_url) and len(missing) == len(self.store.required_tables):
            await self.store.create_tables()
            logger.info("authbridge created its tables in the new SQLite database %s", where)
            return
        raise ConfigError(
            f"the auth tables are missing in {where} ({', '.join(missing)}): "
            "run `authbridge db upgrade` (or `authbridge db init`), "
            "or pass Auth(..., create_tables=True)"
        )

    async def _check_imported_hashes(self) -> None:
        """While imported scrypt hashes remain, every password check does their work too (see
        :mod:`authbridge.passwords`); once all have been rehashed, checks are argon2id only."""
        try:
            self.passwords.imported = await self.accounts.has_imported_secrets()
        except StoreUnavailable:
            self.passwords.imported = True  # unknown: the safe side costs a scrypt per check
            logger.error("authbridge could not check for imported password hashes; will retry")

    def _require_keys(self) -> None:
        if not self.config.jwt_private_keys and not is_sqlite(self.config.database_url):
            raise ConfigError(
                "AUTHBRIDGE_JWT_PRIVATE_KEYS is required with a server database "
                f"({redact_url(self.config.database_url)}); "
                "generate keys with `authbridge keys generate`"
            )

    async def _load_keys(self) -> KeySet:
        if self.config.jwt_private_keys:
            return KeySet.from_texts(self.config.jwt_private_keys)
        self._require_keys()
        return await self._load_or_generate_dev_keys()

    async def _load_or_generate_dev_keys(self) -> KeySet:
        keys, created = await KeyRepository(self.store).load_or_create(
            lambda: generate_private_key_pem(self.config.jwt_algorithm), self.clock()
        )
        if created is not None:
            host = urlsplit(self.config.site_url).hostname or ""
            log = logger.info if is_development_host(host) else logger.warning
            log(
                "authbridge generated a development signing key (%s) and stored it in the "
                "database; set AUTHBRIDGE_JWT_PRIVATE_KEYS in production",
                created.kid,
            )
        return keys

    async def create_tables(self) -> None:
        """Create every missing auth table (``authbridge db init``).

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.store.create_tables()

    # -- components ------------------------------------------------------------------------------

    @property
    def provider_context(self) -> ProviderContext:
        """What providers get: repositories, hasher, limiter, config, clock, session operations."""
        return ProviderContext(
            config=self.config,
            clock=self.clock,
            users=self.users,
            accounts=self.accounts,
            hasher=self.passwords,
            limiter=self.rate_limiter,
            sessions=_ProviderSessions(self),
            oauth=self.oauth,
            mailer=self.email.mailer,
            codes=self.email,
            factors=self.factors,
            passkeys=self.passkeys,
            derive_secrets=self.keys.derived_secrets,
        )

    def _secret_key_material(self) -> list[bytes]:
        from cryptography.hazmat.primitives import serialization

        return [
            key.private_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            for key in self.keys
            if key.private_key is not None
        ]

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
            raise RuntimeError("Auth is not open: await auth.open() or use AuthMiddleware")
        return self._issuer

    @property
    def sessions(self) -> SessionManager:
        """The session manager (after :meth:`open`)."""
        if self._sessions is None:
            raise RuntimeError("Auth is not open: await auth.open() or use AuthMiddleware")
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
        cache = self._verified
        if cache is None:
            raise RuntimeError("Auth is not open: await auth.open() or use AuthMiddleware")
        return cache.verify(token, now=now)

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
        if trusted is not None and (self._verified is None or token not in self._verified):
            remote = await trusted.verify(token, now=now)
            if remote is not None:
                return remote
        return self.verify_token(token, now=now)

    def remember_token(self, access: AccessToken) -> None:
        """Seed the verification cache with a token this process just issued."""
        if self._verified is not None:
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
        chosen = self.providers.get(provider)
        if chosen is None:
            configured = ", ".join(sorted(self.providers))
            raise InvalidParams(f"unknown provider; configured: {configured}")
        try:
            outcome = await chosen.sign_in(self.provider_context, params, request)
        except SignInError as exc:
            await self.events.emit(
                "sign_in_failed",
                provider=provider,
                reason=exc.code,
                ip=request.ip,
                user_agent=request.user_agent,
            )
            raise
        return await self.conclude(_with_amr(outcome, provider), request, provider=provider)

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
        for gate in self._second_factors:
            step = await gate.second_factor(self.provider_context, outcome, request)
            if step is not None:
                return step
        user_id = await self._absorb_anonymous(outcome, request, provider)
        tokens = await self.sessions.create(
            user_id, ip=request.ip, user_agent=request.user_agent, amr=outcome.amr
        )
        if request.session_id is not None:
            await self.sessions.revoke([request.session_id])
        if outcome.linked is not None:
            await self.events.emit(
                "account_linked",
                user_id=user_id,
                session_id=tokens.session_id,
                provider=provider,
                identifier=outcome.linked,
                ip=request.ip,
                user_agent=request.user_agent,
            )
        await self.events.emit(
            "sign_in",
            user_id=user_id,
            session_id=tokens.session_id,
            provider=provider,
            ip=request.ip,
            user_agent=request.user_agent,
        )
        return SignInResult(tokens, redirect_to=outcome.redirect_to)

    async def _absorb_anonymous(
        self, outcome: SignedIn, request: SignInRequest, provider: str | None
    ) -> str:
        """The user the new session belongs to, after an anonymous user's upgrade or merge."""
        anonymous = request.user_id
        if anonymous is None or anonymous == outcome.user_id or provider == "anonymous":
            if anonymous is not None and anonymous == outcome.user_id and provider != "anonymous":
                # A method attached to the current user (e.g. an OAuth link): no longer anonymous.
                await self.users.clear_anonymous(anonymous)
            return outcome.user_id
        if not await self.users.is_anonymous(anonymous):
            return outcome.user_id
        fields = {"ip": request.ip, "user_agent": request.user_agent, "provider": provider}
        if outcome.new_user and await self.users.upgrade_anonymous(anonymous, outcome.user_id):
            await self.events.emit("anonymous_upgraded", user_id=anonymous, **fields)
            return anonymous
        # The identity belongs to someone else: they sign in as themselves and the app moves
        # what the anonymous user made.
        if self.on_anonymous_merge is not None:
            try:
                await self.on_anonymous_merge(anonymous, outcome.user_id)
            except Exception:
                logger.exception("on_anonymous_merge failed; the anonymous user is kept")
                return outcome.user_id
        await self.delete_user(anonymous, reason="anonymous_merged", **fields)
        return outcome.user_id

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
        await self.sessions.revoke_user_sessions(user_id)
        deleted = await self.users.delete(user_id)
        if deleted:
            await self.events.emit(
                "account_deleted",
                user_id=user_id,
                session_id=session_id,
                ip=ip,
                user_agent=user_agent,
                provider=provider,
                reason=reason,
            )
        return deleted

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
        """Delete expired sessions, tokens, revocations and idle rate-limit rows, in batches;
        then anonymous users idle for ``anonymous_idle`` (``report.anonymous_users``).
        ``progress`` is called as batches finish with the rows deleted so far.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.email.repository.delete_expired(batch_size)
        report = await cleanup(
            self.store,
            self.clock(),
            rate_limit_period=self.config.rate_limit.period,
            refresh_reuse_window=self.config.refresh_reuse_window,
            batch_size=batch_size,
            max_batches=max_batches,
            progress=progress,
        )
        removed = await self.cleanup_anonymous(batch_size=batch_size, max_batches=max_batches)
        report = dataclasses.replace(report, anonymous_users=removed)
        if progress is not None:
            progress(report.total)
        return report

    async def cleanup_anonymous(
        self, *, batch_size: int = 1000, max_batches: int | None = None
    ) -> int:
        """Delete anonymous users that have had no active session for ``anonymous_idle`` (and
        everything keyed to them). Returns how many.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.open()
        before = self.clock() - self.config.anonymous_idle
        removed = batches = 0
        while max_batches is None or batches < max_batches:
            batches += 1
            idle = await self.users.idle_anonymous(before, batch_size)
            for user_id in idle:
                await self.sessions.revoke_user_sessions(user_id)
                removed += await self.users.delete(user_id)
            if len(idle) < batch_size:
                break
        return removed


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


def _factor_providers(config: AuthConfig, taken: set[str]) -> list[Provider]:
    """The providers ``config`` turns on (``AUTHBRIDGE_TOTP``, ``AUTHBRIDGE_PASSKEYS``)."""
    chosen: list[Provider] = []
    if config.totp and "totp" not in taken:
        from .providers.totp import TotpProvider

        chosen.append(TotpProvider())
    if config.passkeys and "passkey" not in taken:
        from .providers.passkeys import PasskeyProvider

        chosen.append(PasskeyProvider())
    return chosen


class _ProviderSessions:
    """The session operations providers get (:class:`~authbridge.providers.ProviderSessions`)."""

    def __init__(self, auth: Auth) -> None:
        self._auth = auth

    async def end_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        """End every session of ``user_id`` but ``keep``.

        Raises:
            StoreUnavailable: the database failed.
        """
        if keep is None:
            return await self._auth.sign_out_everywhere(user_id)
        return await self._auth.sign_out_other_sessions(user_id, keep)
