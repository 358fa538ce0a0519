"""Test your app's auth: users, signed-in clients and a fixed clock, without password hashing.

Opt in from ``conftest.py`` with ``pytest_plugins = ["authbridge.testing"]`` for the fixtures
(``authbridge_clock``, ``authbridge_config``, ``authbridge_auth``, ``authbridge_kit``), or use
:class:`AuthTestKit` directly on your app's own :class:`~authbridge.Auth`::

    kit = AuthTestKit(auth)
    user = await kit.create_user("ada@example.com")
    await kit.sign_in(client, user)                # httpx.AsyncClient: cookies
    await kit.sign_in(client, user, via="bearer")  # or an Authorization header
    kit.sign_in_sync(test_client, user)            # Starlette, FastAPI, Litestar, Django

Signing in creates the session directly (no password, no hashing), so a test costs a few
database writes. Cookies are named for the client's base URL: test clients' default
``http://testserver`` gets plain cookies (like localhost), ``https://`` ones get ``__Host-``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from .config import AuthConfig, PasswordConfig
from .cookies import cookie_names, is_development_host
from .engine import Auth, User
from .providers import PasswordProvider, normalize_email
from .sessions import Tokens

__all__ = [
    "FAST_PASSWORDS",
    "AuthTestKit",
    "FixedClock",
    "SignInVia",
    "testing_config",
]

SignInVia = Literal["cookie", "bearer"]
T = TypeVar("T")

FAST_PASSWORDS = PasswordConfig(argon2_memory_kib=1024, argon2_time_cost=1)
"""Cheap argon2id parameters for tests that sign up through the real endpoint."""


class FixedClock:
    """A clock that stands still until told to move: ``clock()`` is now (timezone-aware UTC),
    ``clock.advance(seconds)`` moves it. Pass it as ``Auth(clock=...)``."""

    __slots__ = ("now",)

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2030, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: float | timedelta) -> None:
        """Move the clock forward by seconds or a ``timedelta``."""
        self.now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)


def testing_config(database_url: str, **overrides: Any) -> AuthConfig:
    """A configuration for tests: the given database, cheap password hashing, and the site at
    test clients' ``http://testserver``.

    Raises:
        ConfigError: an override is invalid.
    """
    fields: dict[str, Any] = {
        "database_url": database_url,
        "site_url": "http://testserver",
        "password": FAST_PASSWORDS,
    }
    fields.update(overrides)
    return AuthConfig(**fields)


class AuthTestKit:
    """Users and signed-in clients for one :class:`~authbridge.Auth` (your app's)."""

    __slots__ = ("auth",)

    def __init__(self, auth: Auth) -> None:
        self.auth = auth

    async def create_user(
        self,
        email: str = "user@example.com",
        *,
        name: str | None = None,
        password: str | None = None,
        **columns: Any,
    ) -> User:
        """Insert a user (plus a password account when ``password`` is given: that one hash is
        the only one paid). ``columns`` fill columns the app added to ``users``.

        Raises:
            InvalidEmail: the email is not plausible.
            ValueError: ``columns`` names a column ``users`` does not have.
            AccountExists: a user has this email already.
            StoreUnavailable: the database failed (are the tables created?).
        """
        await self.auth.open()
        email = normalize_email(email)
        secret = await self.auth.passwords.hash(password) if password is not None else None
        user_id = await self.auth.users.create(
            now=self.auth.clock(),
            email=email,
            columns={"name": name, **columns},
            account=None if secret is None else (PasswordProvider.id, email, secret),
        )
        user = await self.auth.get_user(user_id)
        assert user is not None
        return user

    async def tokens_for(self, user: User | str) -> Tokens:
        """A new session for ``user`` (a row or an id): its access and refresh tokens.

        Raises:
            StoreUnavailable: the database failed.
        """
        await self.auth.open()
        user_id = user if isinstance(user, str) else user.id
        tokens = await self.auth.sessions.create(user_id, user_agent="authbridge.testing")
        self.auth.remember_token(tokens.access)
        return tokens

    async def sign_in(self, client: Any, user: User | str, *, via: SignInVia = "cookie") -> Tokens:
        """Sign ``client`` in as ``user``: an httpx client (``AsyncClient``, Starlette's,
        FastAPI's or Litestar's ``TestClient``) or Django's test ``Client`` / ``AsyncClient``.

        ``via="cookie"`` sets the access and refresh cookies (refresh works as in a browser);
        ``via="bearer"`` sets ``Authorization: Bearer <jwt>`` on the client.

        Raises:
            TypeError: ``client`` is none of the supported clients.
            StoreUnavailable: the database failed.
        """
        tokens = await self.tokens_for(user)
        attach(client, tokens, via)
        return tokens

    def sign_in_sync(self, client: Any, user: User | str, *, via: SignInVia = "cookie") -> Tokens:
        """:meth:`sign_in` for synchronous tests, run on the client's event loop (Starlette's and
        Litestar's ``TestClient`` inside ``with``), or on a private one (Django's clients, whose
        requests do not reach the database through this engine).

        Raises:
            TypeError, StoreUnavailable: as :meth:`sign_in`.
        """
        return self.run_sync(client, lambda: self.sign_in(client, user, via=via))

    def create_user_sync(self, client: Any, email: str = "user@example.com", **kwargs: Any) -> User:
        """:meth:`create_user` for synchronous tests (see :meth:`sign_in_sync`).

        Raises:
            InvalidEmail, StoreUnavailable: as :meth:`create_user`.
        """
        return self.run_sync(client, lambda: self.create_user(email, **kwargs))

    def run_sync(self, client: Any, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work()`` where the app's engine lives: on the event loop of a started test
        client, or on a private loop whose connections are released afterwards.

        Raises:
            whatever ``work`` raises.
        """
        # Litestar: ``blocking_portal`` (``portal`` is a factory); Starlette: ``portal``.
        portal = getattr(client, "blocking_portal", None) or getattr(client, "portal", None)
        if portal is not None and hasattr(portal, "call"):
            result: T = portal.call(work)
            return result

        async def isolated() -> T:
            try:
                return await work()
            finally:
                await self.auth.store.close()  # its connections belong to this loop

        return asyncio.run(isolated())


def attach(client: Any, tokens: Tokens, via: SignInVia = "cookie") -> None:
    """Put ``tokens`` on a test client, by cookie or bearer header.

    Raises:
        TypeError: ``client`` is neither an httpx client nor a Django test client.
    """
    if hasattr(client, "base_url") and hasattr(client, "cookies"):  # httpx and subclasses
        base = urlsplit(str(client.base_url))
        if via == "bearer":
            client.headers["authorization"] = f"Bearer {tokens.access.token}"
            return
        host = base.hostname or "testserver"
        names = cookie_names(base.scheme == "https" or not is_development_host(host))
        # Where cookielib files the server's own cookies, so a refresh replaces these: dotless
        # hosts ("testserver") go under "testserver.local".
        domain = host if "." in host else host + ".local"
        client.cookies.set(names.jwt, tokens.access.token, domain=domain, path="/")
        client.cookies.set(names.refresh, tokens.refresh_token, domain=domain, path="/")
        return
    if hasattr(client, "cookies") and hasattr(client, "defaults"):  # Django's test clients
        if via == "bearer":
            # AsyncClient turns its defaults into ASGI headers; Client into WSGI META.
            asgi = type(client).__name__ == "AsyncClient"
            key = "AUTHORIZATION" if asgi else "HTTP_AUTHORIZATION"
            client.defaults[key] = f"Bearer {tokens.access.token}"
            return
        names = cookie_names(False)  # Django's test clients speak http to "testserver"
        client.cookies[names.jwt] = tokens.access.token
        client.cookies[names.refresh] = tokens.refresh_token
        return
    raise TypeError(f"not a supported test client: {type(client).__name__}")


# -- the pytest plugin ----------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - the plugin is only loaded by pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def authbridge_clock() -> FixedClock:
        """A :class:`FixedClock` at 2030-01-01 UTC."""
        return FixedClock()

    @pytest.fixture
    def authbridge_config(tmp_path: Path) -> AuthConfig:
        """:func:`testing_config` on a fresh SQLite file in the test's ``tmp_path``."""
        return testing_config(f"sqlite+aiosqlite:///{tmp_path}/authbridge.db")

    @pytest.fixture
    def authbridge_auth(authbridge_config: AuthConfig, authbridge_clock: FixedClock) -> Auth:
        """An :class:`~authbridge.Auth` on ``authbridge_config`` with ``authbridge_clock``
        (tables created on open). Build your app with it; the app's lifespan (or the test)
        closes it."""
        return Auth(authbridge_config, clock=authbridge_clock, create_tables=True)

    @pytest.fixture
    def authbridge_kit(authbridge_auth: Auth) -> AuthTestKit:
        """An :class:`AuthTestKit` on ``authbridge_auth``."""
        return AuthTestKit(authbridge_auth)
