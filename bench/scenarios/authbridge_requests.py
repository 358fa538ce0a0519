"""authbridge's own scenarios, measured in the same interleaved rounds as the baselines.

Every scenario builds ``AuthMiddleware(make_inner_app(), Auth(...))`` (``authbridge_app.py``)
through the public API, on its own throwaway SQLite database with one signed-up user, and
requests it as a browser on ``http://localhost:8000`` would (so the cookies are
``authbridge.jwt`` / ``authbridge.refresh``):

* ``authbridge-anonymous`` - no cookie, no header, ``GET /`` (the handler ignores auth).
* ``authbridge-cookie-warm`` - access + refresh cookies, token seen before, ``GET /`` (the same
  handler as ``starlette-bare``); ``authbridge-cookie-warm-reads-auth`` - the same on ``GET /me``,
  whose handler reads the user id like the JWT baselines' handlers do.
* ``authbridge-bearer-warm`` - ``Authorization: Bearer``, token seen before, ``GET /me``.
* ``authbridge-bearer-remote-warm`` - the same with a Convex Auth-shaped RS256 token from a
  trusted issuer (``AUTHBRIDGE_TRUSTED_ISSUERS``; its JWKS served on 127.0.0.1), seen before.
* ``authbridge-first-sight`` - a pool of distinct tokens larger than the verify-once cache,
  cycled, so every request pays the full ES256 signature check.
* ``authbridge-refresh`` - only a refresh cookie: every request rotates it; the next request
  presents the token from this response's ``Set-Cookie``.
* ``starlette-ssr-page`` / ``authbridge-ssr-page`` / ``authbridge-ssr-page-auth`` - a Jinja2
  page bare, behind the middleware (signed in, template ignores auth), and reading ``auth``.
* ``authbridge-warm-{1k,10k,100k}-sessions`` - the warm cookie request with that many live
  sessions (one refresh token each) and as many revocations in the tables and loaded in the
  in-process revocation set: the cost must not grow with the tables.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from http.cookies import SimpleCookie
from typing import Any

from authbridge import Auth, SignInResult
from bench.runners.inprocess import ASGIApp, Prepared, Scenario, Scope, ScopeFactory, http_scope
from bench.runners.loopback import LoopbackScenario, LoopbackSetup
from bench.scenarios import authbridge_app, baseline_apps, databases

HOST = "localhost:8000"
JWT_COOKIE = "authbridge.jwt"
REFRESH_COOKIE = "authbridge.refresh"

WARM = "authbridge-cookie-warm"
WARM_READS_AUTH = "authbridge-cookie-warm-reads-auth"
BARE_SAME_REQUEST = "starlette-bare-same-cookies"

GROWTH_SIZES: tuple[int, ...] = (1_000, 10_000, 100_000)


def growth_name(size: int) -> str:
    return f"authbridge-warm-{size // 1000}k-sessions"


def _prepared(
    auth: Auth,
    make_scope: ScopeFactory,
    database: databases.TempDatabase,
    observe: Callable[[int, Sequence[tuple[bytes, bytes]]], None] | None = None,
) -> Prepared:
    """The app over an already open ``auth``; closing it drops the database.

    The scenarios run without the ASGI lifespan, so no revocation poller runs: a dozen engines
    live in this one process and their pollers would land inside each other's measurements
    (the poller's cost is measured on its own, see ``bench/runners/growth.py``).
    """

    async def aclose() -> None:
        try:
            await auth.close()
        finally:
            await database.drop()

    path = str(make_scope()["path"])
    return Prepared(authbridge_app.make_app(auth, first=path), make_scope, aclose, observe)


async def _signed_in(**config: Any) -> tuple[Auth, databases.TempDatabase, SignInResult]:
    database = await databases.create_database("sqlite")
    try:
        auth = databases.make_auth(database, **config)
        result = await databases.sign_up(auth)
    except BaseException:
        await database.drop()
        raise
    return auth, database, result


def _cookies(access: str | None, refresh: str | None) -> list[tuple[str, str]]:
    pairs = []
    if access is not None:
        pairs.append((JWT_COOKIE, access))
    if refresh is not None:
        pairs.append((REFRESH_COOKIE, refresh))
    return pairs


# --------------------------------------------------------------------------------------------
# Factories


async def _anonymous() -> Prepared:
    auth, database, _ = await _signed_in()
    return _prepared(auth, http_scope("/", host=HOST), database)


def _cookie_warm(path: str) -> Callable[[], Awaitable[Prepared]]:
    async def factory() -> Prepared:
        auth, database, signed = await _signed_in()
        tokens = signed.tokens
        scope = http_scope(
            path, host=HOST, cookies=_cookies(tokens.access.token, tokens.refresh_token)
        )
        return _prepared(auth, scope, database)

    return factory


async def _bearer_warm() -> Prepared:
    auth, database, signed = await _signed_in()
    scope = http_scope("/me", host=HOST, bearer=signed.tokens.access.token)
    return _prepared(auth, scope, database)


async def _bearer_remote_warm() -> Prepared:
    from authbridge import TrustedIssuer
    from bench.scenarios.remote_issuer import start_remote_issuer

    issuer = await start_remote_issuer()
    try:
        trusted = TrustedIssuer(issuer.url, "convex", jwks_url=issuer.jwks_url, subject="convex")
        auth, database, signed = await _signed_in(trusted_issuers=(trusted,))
    except BaseException:
        await issuer.aclose()
        raise
    token = issuer.mint(f"{signed.user_id}|{signed.session_id}")
    prepared = _prepared(auth, http_scope("/me", host=HOST, bearer=token), database)

    close_auth = prepared.aclose
    assert close_auth is not None

    async def aclose() -> None:
        try:
            await close_auth()
        finally:
            await issuer.aclose()

    return prepared._replace(aclose=aclose)


def _verify_cache_size() -> int:
    try:
        from authbridge.tokens import VERIFY_CACHE_SIZE
    except ImportError:
        return 10_000
    return int(VERIFY_CACHE_SIZE)


async def _first_sight() -> Prepared:
    auth, database, signed = await _signed_in()
    user_id, session_id = signed.user_id, signed.session_id
    # A FIFO/LRU cache of size C misses on every request when a pool of > C tokens is cycled.
    pool_size = _verify_cache_size() + 2_048
    pool: list[str] = []
    seen: set[str] = set()
    deadline = time.perf_counter() + 20.0
    while len(pool) < pool_size and time.perf_counter() < deadline:
        token = auth.issuer.issue(user_id, session_id).token  # ECDSA: every signature differs
        if token not in seen:
            seen.add(token)
            pool.append(token)
    if len(pool) < pool_size:
        await database.drop()
        raise RuntimeError(f"could only mint {len(pool)} distinct tokens")
    scopes = [http_scope("/me", host=HOST, cookies=_cookies(t, None)) for t in pool]
    position = 0

    def make_scope() -> Scope:
        nonlocal position
        factory = scopes[position]
        position = (position + 1) % len(scopes)
        return factory()

    return _prepared(auth, make_scope, database)


async def _refresh() -> Prepared:
    auth, database, signed = await _signed_in()
    current = {"refresh": signed.tokens.refresh_token}

    def make_scope() -> Scope:
        return http_scope("/me", host=HOST, cookies=_cookies(None, current["refresh"]))()

    def observe(status: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        presented = current["refresh"]
        for name, value in headers:
            if name.lower() != b"set-cookie":
                continue
            jar: SimpleCookie = SimpleCookie()
            jar.load(value.decode("latin-1"))
            morsel = jar.get(REFRESH_COOKIE)
            if morsel is not None and morsel.value:
                current["refresh"] = morsel.value
        if current["refresh"] == presented:
            # Presenting the same token again would measure the cheaper "lost response" path.
            raise RuntimeError(f"no rotated refresh cookie in the response (status {status})")

    return _prepared(auth, make_scope, database, observe)


async def _ssr_bare() -> tuple[ASGIApp, ScopeFactory]:
    return authbridge_app.make_inner_app(first="/page", install=False), http_scope(
        "/page", host=HOST
    )


def _ssr(path: str) -> Callable[[], Awaitable[Prepared]]:
    async def factory() -> Prepared:
        auth, database, signed = await _signed_in()
        tokens = signed.tokens
        scope = http_scope(
            path, host=HOST, cookies=_cookies(tokens.access.token, tokens.refresh_token)
        )
        return _prepared(auth, scope, database)

    return factory


def _growth(size: int) -> Callable[[], Awaitable[Prepared]]:
    async def factory() -> Prepared:
        auth, database, signed = await _signed_in()
        try:
            await databases.bulk_sessions(auth, size, expired=False, revoked=True)
            # Re-open so the revocation set is loaded from the table, as at a real startup.
            await auth.close()
            await auth.open()
            if len(auth.revocations) < size:
                raise RuntimeError(
                    f"revocation set holds {len(auth.revocations)} entries, expected {size}"
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await auth.close()
            await database.drop()
            raise
        tokens = signed.tokens
        scope = http_scope(
            "/me", host=HOST, cookies=_cookies(tokens.access.token, tokens.refresh_token)
        )
        return _prepared(auth, scope, database)

    return factory


def _ab(name: str, factory: Callable[[], Awaitable[Prepared]], **options: object) -> Scenario:
    return Scenario(name, factory, lifespan=False, **options)  # type: ignore[arg-type]


def scenarios(growth_sizes: Sequence[int] = GROWTH_SIZES) -> list[Scenario]:
    """In-process authbridge scenarios (see the module docstring)."""
    mode = authbridge_app.ssr_mode()
    found = [
        _ab(
            "authbridge-anonymous",
            _anonymous,
            description="AuthMiddleware, no credentials, GET / (handler ignores auth)",
        ),
        _ab(
            WARM,
            _cookie_warm("/"),
            description="access+refresh cookies, token seen before, GET / (same handler as"
            " starlette-bare, which ignores auth)",
        ),
        _ab(
            WARM_READS_AUTH,
            _cookie_warm("/me"),
            description="the same, GET /me: the handler reads the user id (as the JWT"
            " baselines' handlers do), so the response gets Vary/Cache-Control",
        ),
        _ab(
            "authbridge-bearer-warm",
            _bearer_warm,
            description="Authorization: Bearer, token seen before, GET /me",
        ),
        _ab(
            "authbridge-bearer-remote-warm",
            _bearer_remote_warm,
            description="Authorization: Bearer with a trusted issuer's RS256 token (Convex"
            " shape), seen before, GET /me",
        ),
        _ab(
            "authbridge-first-sight",
            _first_sight,
            description="a never-seen ES256 token every request (full signature check)",
        ),
        _ab(
            "authbridge-refresh",
            _refresh,
            description="refresh cookie only: every request rotates (SQLite)",
        ),
        Scenario(
            "starlette-ssr-page",
            _ssr_bare,
            description="bare Starlette + plain Jinja2Templates page (no middleware)",
        ),
        _ab(
            "authbridge-ssr-page",
            _ssr("/page"),
            description=f"same page behind AuthMiddleware, signed in, template ignores auth"
            f" (environment prepared via {mode})",
        ),
        _ab(
            "authbridge-ssr-page-auth",
            _ssr("/page-auth"),
            expect_in_body=authbridge_app.AUTH_PAGE_MARKER.encode(),
            description=f"same page reading auth in the template (via {mode})",
        ),
    ]
    found += [
        _ab(
            growth_name(size),
            _growth(size),
            description=f"warm cookie with {size} sessions + {size} revocations loaded",
        )
        for size in growth_sizes
    ]
    return found


# --------------------------------------------------------------------------------------------
# Loopback


def _loopback_setup(path: str) -> Callable[[], Awaitable[LoopbackSetup]]:
    async def setup() -> LoopbackSetup:
        auth, database, signed = await _signed_in()
        await auth.close()
        tokens = signed.tokens
        pairs = _cookies(tokens.access.token, tokens.refresh_token)
        return LoopbackSetup(
            env={
                authbridge_app.ENV_DATABASE_URL: database.url,
                authbridge_app.ENV_PRIVATE_PEM: databases.private_pem(),
                authbridge_app.ENV_FIRST_ROUTE: path,
            },
            headers=[("cookie", "; ".join(f"{n}={v}" for n, v in pairs))],
            cleanup=database.drop,
        )

    return setup


def loopback_scenarios() -> list[LoopbackScenario]:
    """uvicorn serving the same app behind authbridge (warm cookie-authenticated requests)."""
    return [
        LoopbackScenario(
            BARE_SAME_REQUEST,
            f"{baseline_apps.__name__}:bare_app",
            path="/",
            setup=_loopback_setup("/"),
            description="starlette-bare receiving the very same request (Cookie header included:"
            " the server parses it whether or not the app uses it)",
        ),
        LoopbackScenario(
            WARM,
            f"{authbridge_app.__name__}:app_from_env",
            path="/",
            factory=True,
            setup=_loopback_setup("/"),
            description="AuthMiddleware, signed-in browser cookies, GET / (handler ignores auth)",
        ),
        LoopbackScenario(
            WARM_READS_AUTH,
            f"{authbridge_app.__name__}:app_from_env",
            path="/me",
            factory=True,
            setup=_loopback_setup("/me"),
            description="the same, GET /me (handler reads the user id)",
        ),
    ]
