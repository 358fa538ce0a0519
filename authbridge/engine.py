"""The :class:`Auth` engine: store, keys, sessions and providers behind one object.

Requests reach it through :class:`~authbridge.AuthMiddleware`; code outside a request (admin
tasks, the CLI, tests) calls its methods directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Column, MetaData, select

from .config import AuthConfig
from .errors import ConfigError, InvalidParams, StoreUnavailable, TokenError
from .passwords import PasswordHasher
from .providers import PasswordProvider, Provider, SignInContext
from .ratelimit import RateLimiter
from .revocations import RevocationSet
from .sessions import ClaimsFactory, CleanupReport, SessionInfo, SessionManager, Tokens, cleanup
from .store import LoopLocalLock, Store, insert_ignoring_conflicts, redact_url
from .store.dialect import is_sqlite
from .tokens import AccessToken, KeySet, SigningKey, TokenIssuer, generate_private_key_pem

__all__ = ["Auth", "Clock", "SignInResult", "User", "utc_now"]

logger = logging.getLogger("authbridge")

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware UTC. Inject one in tests."""

VERIFY_CACHE_SIZE = 10_000
OPPORTUNISTIC_CLEANUP_EVERY = 600.0


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class User:
    """A ``users`` row. ``data`` holds every column, including ones the app added."""

    id: str
    email: str | None
    name: str | None
    image: str | None
    is_anonymous: bool
    created_at: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SignInResult:
    """A successful sign-in or sign-up."""

    tokens: Tokens
    """Access and refresh tokens of the new session."""

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
        custom_claims: ``(user_id, session_id) -> claims`` added to every access token.
        providers: sign-in providers (default: the password provider).
        create_tables: create missing tables when the engine opens (demo apps, tests).
        engine_options: extra keyword arguments for SQLAlchemy's ``create_async_engine``.
    """

    def __init__(
        self,
        config: AuthConfig | None = None,
        *,
        clock: Clock = utc_now,
        user_columns: Iterable[Column[Any]] = (),
        metadata: MetaData | None = None,
        custom_claims: ClaimsFactory | None = None,
        providers: Sequence[Provider] | None = None,
        create_tables: bool = False,
        engine_options: dict[str, Any] | None = None,
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
        self.rate_limiter = RateLimiter(self.store, self.config.rate_limit.period, clock)
        self.revocations = RevocationSet(clock)
        provider_list = list(providers) if providers is not None else [PasswordProvider()]
        self.providers: dict[str, Provider] = {p.id: p for p in provider_list}
        self._custom_claims = custom_claims
        self._create_tables = create_tables
        self._issuer: TokenIssuer | None = None
        self._sessions: SessionManager | None = None
        self._open_lock = LoopLocalLock()
        self._background: asyncio.Task[None] | None = None
        self._verified: OrderedDict[str, AccessToken] = OrderedDict()

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
            if self._create_tables:
                await self.store.create_tables()
            keys = await self._load_keys()
            issuer = TokenIssuer(
                keys,
                issuer=self.config.issuer,
                audience=self.config.audience,
                lifetime=self.config.jwt_duration,
                clock=self.clock,
            )
            self._sessions = SessionManager(
                self.store, issuer, self.config, self.clock, self.revocations, self._custom_claims
            )
            try:
                await self.revocations.poll(self.store)
            except StoreUnavailable:
                # Serve anyway; the background poller catches up once the database is back.
                logger.error("authbridge could not load revocations at startup; will retry")
            self._issuer = issuer

    async def close(self) -> None:
        """Stop background work and release the database."""
        await self.stop_background()
        await self.store.close()
        self.passwords.close()
        self._issuer = None
        self._sessions = None

    async def __aenter__(self) -> Auth:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_background(self) -> None:
        """Start polling revocations (and cleaning up now and then) on the running loop."""
        if self._background is None or self._background.done():
            self._background = asyncio.get_running_loop().create_task(self._background_loop())

    async def stop_background(self) -> None:
        """Stop the background task, if running."""
        task, self._background = self._background, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("authbridge background poll failed; retrying")

    async def _load_keys(self) -> KeySet:
        if self.config.jwt_private_keys:
            return KeySet.from_texts(self.config.jwt_private_keys)
        if not is_sqlite(self.config.database_url):
            raise ConfigError(
                "AUTHBRIDGE_JWT_PRIVATE_KEYS is required with a server database "
                f"({redact_url(self.config.database_url)}); "
                "generate keys with `authbridge keys generate`"
            )
        return await self._load_or_generate_dev_keys()

    async def _load_or_generate_dev_keys(self) -> KeySet:
        table = self.store.tables.keys
        async with self.store.transaction() as conn:
            await conn.run_sync(lambda sync: table.create(sync, checkfirst=True))
            rows = (await conn.execute(select(table).order_by(table.c.created_at))).all()
            if not rows:
                pem = generate_private_key_pem(self.config.jwt_algorithm)
                key = SigningKey.load(pem)
                await conn.execute(
                    insert_ignoring_conflicts(table, self.store.dialect_name).values(
                        kid=key.kid,
                        created_at=self.clock(),
                        algorithm=key.algorithm,
                        public_jwk=json.dumps(dict(key.public_jwk)),
                        private_pem=pem,
                    )
                )
                rows = (await conn.execute(select(table).order_by(table.c.created_at))).all()
                host = self.config.site_url.split("://", 1)[-1].split(":")[0].split("/")[0]
                log = logger.info if host in {"localhost", "127.0.0.1", "[::1]"} else logger.warning
                log(
                    "authbridge generated a development signing key (%s) and stored it in the "
                    "database; set AUTHBRIDGE_JWT_PRIVATE_KEYS in production",
                    key.kid,
                )
        keys = [
            SigningKey.load(r.private_pem)
            if r.private_pem
            else SigningKey.from_public_jwk(json.loads(r.public_jwk))
            for r in rows
        ]
        return KeySet(keys)

    async def create_tables(self) -> None:
        """Create every missing auth table (``authbridge db init``).

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.store.create_tables()

    # -- components ------------------------------------------------------------------------------

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
        """
        cached = self._verified.get(token)
        if cached is None:
            cached = self.issuer.verify(token)
            self.remember_token(cached)
        elif (now if now is not None else self.clock()) >= cached.expires_at:
            del self._verified[token]
            raise TokenError("expired")
        else:
            self._verified.move_to_end(token)
        if cached.session_id in self.revocations:
            raise TokenError("revoked")
        return cached

    def remember_token(self, access: AccessToken) -> None:
        """Seed the verification cache with a token this process just issued."""
        self._verified[access.token] = access
        self._verified.move_to_end(access.token)
        if len(self._verified) > VERIFY_CACHE_SIZE:
            self._verified.popitem(last=False)

    def jwks(self) -> dict[str, Any]:
        """The public JWK set (``/.well-known/jwks.json``)."""
        return self.keys.jwks()

    def openid_configuration(self) -> dict[str, Any]:
        """The discovery document (``/.well-known/openid-configuration``)."""
        issuer = self.config.issuer
        return {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "authorization_endpoint": f"{issuer}{self.config.route_prefix}/signin",
            "token_endpoint": f"{issuer}{self.config.route_prefix}/token",
            "response_types_supported": ["code", "id_token", "token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted(self.keys.algorithms),
        }

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
        """Authenticate with ``provider`` and start a session.

        Args:
            replace_session: the caller's current session, ended once the new one exists.

        Raises:
            InvalidParams: unknown provider or malformed params.
            SignInError: the provider's error (``InvalidCredentials``, ``TooManyAttempts``, ...).
            StoreUnavailable: the database failed.
        """
        await self.open()
        chosen = self.providers.get(provider)
        if chosen is None:
            raise InvalidParams(f"unknown provider {provider!r}")
        context = SignInContext(ip=ip, user_agent=user_agent)
        user_id = await chosen.authenticate(self, params, context)
        tokens = await self.sessions.create(user_id, ip=ip, user_agent=user_agent)
        if replace_session is not None:
            await self.sessions.revoke([replace_session])
        return SignInResult(tokens)

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

    async def sign_out(self, session_id: str) -> None:
        """End one session; its access tokens are refused from now on.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.open()
        await self.sessions.revoke([session_id])

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
        users = self.store.tables.users
        async with self.store.read() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).one_or_none()
        if row is None:
            return None
        data = dict(row._mapping)
        return User(
            id=data["id"],
            email=data["email"],
            name=data["name"],
            image=data["image"],
            is_anonymous=bool(data["is_anonymous"]),
            created_at=data["created_at"],
            data=data,
        )

    async def poll_revocations(self) -> int:
        """Load new revocations from the database now (the background task does this every
        ``revocation_poll_interval``). Returns the number of rows read.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.open()
        return await self.revocations.poll(self.store)

    async def cleanup(
        self, *, batch_size: int = 1000, max_batches: int | None = None
    ) -> CleanupReport:
        """Delete expired sessions, tokens, revocations and idle rate-limit rows, in batches.

        Raises:
            StoreUnavailable: the database failed.
        """
        return await cleanup(
            self.store,
            self.clock(),
            rate_limit_period=self.config.rate_limit.period,
            batch_size=batch_size,
            max_batches=max_batches,
        )
