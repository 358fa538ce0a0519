"""The notes demo: server-rendered pages, a JSON API and a token-authenticated stream.

Run it from the repository root (``make demo`` does this on http://127.0.0.1:8000)::

    python -m uvicorn examples.notes.app:app

Every setting comes from ``AUTHBRIDGE_*`` variables (``AuthConfig.from_env()``), e.g.
``AUTHBRIDGE_SESSION_SHARING=per_tab`` for one session per browser tab. The app keeps its own
``notes`` table, keyed by ``user_id``, on the same SQLAlchemy ``MetaData`` as the auth tables,
and every table is created on startup.

Pages render with an async Jinja2 environment, so ``auth.user()`` in the base template loads the
``users`` row lazily: one query on signed-in pages, none on signed-out ones.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, Text, select, update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from authbridge import (
    Auth,
    AuthConfig,
    AuthMiddleware,
    ConsoleSender,
    EmailProvider,
    PasswordProvider,
    RecentAuth,
    get_auth_session_id,
    get_auth_state,
    get_auth_user,
    get_auth_user_id,
    ssr,
)
from authbridge.engine import Clock, utc_now
from authbridge.events import EventHook
from authbridge.routing import safe_redirect_path
from authbridge.store.tables import UTCDateTime

from .display import describe_session

__all__ = ["app", "create_app", "notes_table"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
MAX_NOTE_LENGTH = 1000
MAX_FORM_BYTES = 16 * 1024
STREAM_EVENTS = 5
STREAM_INTERVAL = 0.2
ERROR_MESSAGES = {
    "InvalidCredentials": "Wrong email or password.",
    "AccountExists": "An account with this email already exists. Sign in instead.",
    "InvalidPassword": "Choose a password of at least 8 characters.",
    "InvalidEmail": "That is not a valid email address.",
    "InvalidParams": "Fill in your email and password.",
    "TooManyAttempts": "Too many attempts. Try again later.",
    "OAuthDenied": "Sign-in was cancelled at the provider.",
    "OAuthStateInvalid": "That sign-in link expired or was not started here. Try again.",
    "OAuthProviderError": "The sign-in provider did not answer as expected. Try again later.",
    "AccountNotLinked": "An account with this email exists. Sign in with your password first.",
    "InvalidCode": "That code is wrong or has expired. Ask for a new one.",
    "EmailUnavailable": "We could not send the email. Try again in a moment.",
}
SIGN_UP_ERRORS = frozenset({"AccountExists", "InvalidPassword"})
"""Errors only sign-up gives: shown beside the sign-up form (the page's script refines this)."""
SESSION_ENDED = frozenset({"revoked", "invalid_refresh_token", "refresh_token_reused"})
"""Why a presented session was refused, when that means it was ended elsewhere or expired."""
STARTED = re.compile(r"^[A-Za-z-]{1,32}$")
ACCOUNT_MESSAGES = {
    "RecentAuthRequired": "For your safety, sign in again (or enter your password) first.",
    "LastSignInMethod": "That is your only way to sign in: add another one first.",
    "MethodNotLinked": "That sign-in method is not on your account.",
    "IdentityInUse": "That account already belongs to another user.",
    "InvalidCode": "That code is wrong or expired. Ask for a new one.",
    "InvalidCredentials": "Wrong password.",
    "InvalidPassword": "Choose a password of at least 8 characters.",
    "InvalidParams": "Fill in every field.",
    "TooManyAttempts": "Too many attempts. Try again later.",
}
SECURITY_RECENT_AUTH = timedelta(minutes=10)
"""The security settings page needs a sign-in this recent (a ``RecentAuth`` protect rule)."""
_ERROR_CODE = re.compile(r"^[A-Za-z]{1,64}$")


def notes_table(metadata: MetaData) -> Table:
    """The app's own table, next to the auth tables: one row per note, owned by a user."""
    return Table(
        "notes",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        Column("text", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
    )


class NotesSite:
    """The pages and API of the demo, over one :class:`~authbridge.Auth` engine."""

    def __init__(self, auth: Auth, notes: Table) -> None:
        self.auth = auth
        self.notes = notes
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=jinja2.select_autoescape(),
            enable_async=True,
        )
        ssr.install(self.templates)
        self.templates.globals["auth_prefix"] = auth.config.route_prefix
        self.templates.globals["auth_sharing"] = auth.config.session_sharing
        self.templates.globals["anonymous_enabled"] = auth.config.anonymous

    async def page(self, request: Request, name: str, **variables: Any) -> HTMLResponse:
        """Render a template; ``auth.user()`` in it loads the users row on first use."""
        error = get_auth_state(request).error
        variables.setdefault("request_path", request.url.path)
        variables.setdefault("session_ended", error if error in SESSION_ENDED else None)
        return HTMLResponse(await ssr.render(self.templates, request, name, variables))

    # -- pages -----------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return await self.page(request, "index.html")

    async def sign_in(self, request: Request) -> Response:
        return await self.page(request, "signin.html", **self._form_state(request))

    async def reset(self, request: Request) -> Response:
        return await self.page(request, "reset.html", **self._form_state(request))

    def _form_state(self, request: Request) -> dict[str, Any]:
        """What the sign-in and reset pages show: an error, and the step a code was sent for
        (``?started=<flow>&email=...``, set by the auth endpoint after a code-sending form)."""
        query = request.query_params
        code = query.get("error")
        if code is not None and not _ERROR_CODE.match(code):
            code = "SignInFailed"
        started = query.get("started")
        return {
            "next": safe_redirect_path(query.get("next"), "/"),
            "error": code,
            "error_form": "signup-form" if code in SIGN_UP_ERRORS else "signin-form",
            "error_message": ERROR_MESSAGES.get(code or "", "Sign-in failed. Try again."),
            "oauth_providers": self.auth.oauth_providers(),
            "started": started if started and STARTED.match(started) else None,
            "started_email": query.get("email", "")[:320],
            "factor": query.get("factor"),
            "reauth": query.get("reauth") == "1",
            "passkeys_enabled": self.auth.config.passkeys,
        }

    async def account(self, request: Request) -> Response:
        """The signed-in user's account: methods, password, linking, deletion."""
        user_id = get_auth_user_id(request)  # never None: the middleware protects /account
        assert user_id is not None
        code = request.query_params.get("error")
        if code is not None and not _ERROR_CODE.match(code):
            code = "AccountError"
        methods = await self.auth.accounts.for_user(user_id)
        linked = {m.provider for m in methods}
        return await self.page(
            request,
            "account.html",
            methods=methods,
            account_user=await self.auth.get_user(user_id),
            has_password="password" in linked,
            linkable=[
                p.id
                for p in self.auth.providers.values()
                if hasattr(p, "start") and p.id not in linked
            ],
            session_count=len(await self.auth.list_sessions(user_id)),
            error=code,
            error_message=ACCOUNT_MESSAGES.get(code or "", "That did not work. Try again."),
        )

    async def move_notes(self, anonymous_user_id: str, user_id: str) -> None:
        """``on_anonymous_merge``: an anonymous visitor signed in to an existing account, so
        the notes they wrote become that account's."""
        async with self.auth.store.transaction() as conn:
            await conn.execute(
                update(self.notes)
                .where(self.notes.c.user_id == anonymous_user_id)
                .values(user_id=user_id)
            )

    async def security(self, request: Request) -> Response:
        """Passkeys and the authenticator app (the middleware asks for a recent sign-in)."""
        user_id = get_auth_user_id(request)
        assert user_id is not None  # protected by a RecentAuth rule
        totp = await self.auth.factors.totp(user_id)
        enabled = totp is not None and totp.confirmed_at is not None
        left = await self.auth.factors.recovery_codes_left(user_id) if enabled else 0
        return await self.page(
            request,
            "security.html",
            passkeys_enabled=self.auth.config.passkeys,
            passkeys=await self.auth.passkeys.of_user(user_id) if self.auth.config.passkeys else [],
            totp_enabled=self.auth.config.totp,
            totp={"enabled": enabled, "recovery_codes_left": left},
            recent_minutes=int(SECURITY_RECENT_AUTH.total_seconds() // 60),
        )

    async def list_notes(self, request: Request) -> Response:
        user_id = get_auth_user_id(request)  # never None: the middleware protects /notes
        async with self.auth.store.read() as conn:
            rows = await conn.execute(
                select(self.notes.c.id, self.notes.c.text)
                .where(self.notes.c.user_id == user_id)
                .order_by(self.notes.c.id)
            )
            notes = [{"id": row.id, "text": row.text} for row in rows]
        return await self.page(request, "notes.html", notes=notes)

    async def add_note(self, request: Request) -> Response:
        user_id = get_auth_user_id(request)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return PlainTextResponse("Payload Too Large", status_code=413)
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        text = form.get("text", "").strip()[:MAX_NOTE_LENGTH]
        if text and user_id is not None:
            async with self.auth.store.transaction() as conn:
                await conn.execute(
                    self.notes.insert().values(
                        user_id=user_id, text=text, created_at=self.auth.clock()
                    )
                )
        return RedirectResponse("/notes", status_code=303)

    async def sessions(self, request: Request) -> Response:
        user_id = get_auth_user_id(request)
        sessions = await self.auth.list_sessions(user_id) if user_id is not None else []
        current, now = get_auth_session_id(request), self.auth.clock()
        devices = [describe_session(s, current_session_id=current, now=now) for s in sessions]
        devices.sort(key=lambda d: (not d.current, -d.last_active_at.timestamp()))
        return await self.page(request, "sessions.html", devices=devices)

    # -- API -------------------------------------------------------------------------------------

    async def whoami(self, request: Request) -> Response:
        user_id = get_auth_user_id(request)
        if user_id is None:
            return unauthenticated()
        user = await get_auth_user(request)
        return JSONResponse(
            {
                "userId": user_id,
                "sessionId": get_auth_session_id(request),
                "email": user.email if user is not None else None,
            }
        )

    async def stream(self, request: Request) -> Response:
        user_id = get_auth_user_id(request)
        if user_id is None:
            return unauthenticated()

        async def events() -> AsyncIterator[str]:
            for n in range(1, STREAM_EVENTS + 1):
                if n > 1:
                    await asyncio.sleep(STREAM_INTERVAL)
                yield f"data: {json.dumps({'userId': user_id, 'n': n})}\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    def routes(self) -> list[Route | Mount]:
        """The app's routes (the auth endpoints under ``/api/auth`` belong to the middleware)."""
        return [
            Route("/", self.home),
            Route("/signin", self.sign_in),
            Route("/reset", self.reset),
            Route("/notes", self.list_notes, methods=["GET"]),
            Route("/notes", self.add_note, methods=["POST"]),
            Route("/sessions", self.sessions),
            Route("/account", self.account),
            Route("/settings/security", self.security),
            Route("/api/whoami", self.whoami),
            Route("/api/stream", self.stream),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]


def unauthenticated() -> Response:
    """RFC 6750: 401 with a Bearer challenge."""
    return JSONResponse(
        {"error": "Unauthenticated"},
        status_code=401,
        headers={"www-authenticate": 'Bearer realm="notes"'},
    )


def create_app(
    config: AuthConfig | None = None,
    *,
    clock: Clock = utc_now,
    on_event: EventHook | None = None,
) -> AuthMiddleware:
    """Build the demo (``config`` defaults to ``AuthConfig.from_env()``; ``on_event`` receives
    the auth events, which are logged at INFO either way)."""
    metadata = MetaData()
    notes = notes_table(metadata)
    config = config if config is not None else AuthConfig.from_env()
    auth = Auth(
        config,
        metadata=metadata,  # the auth tables join the app's schema
        create_tables=True,  # every table on the metadata, created when the middleware starts
        clock=clock,
        providers=[PasswordProvider(), EmailProvider()],
        # A demo: without AUTHBRIDGE_SMTP_URL, codes and links are printed (logged at WARNING).
        mailer=ConsoleSender() if config.email.smtp_url is None else None,
        on_event=on_event,
    )
    site = NotesSite(auth, notes)
    auth.on_anonymous_merge = site.move_notes
    # HTML GETs of protected pages go to /signin?next=...; other requests get 401.
    # /settings/security also needs a recent sign-in (else: /signin?reauth=1&next=...).
    return AuthMiddleware(
        Starlette(routes=site.routes()),
        auth,
        protect=[
            "/notes",
            "/sessions",
            "/account",
            RecentAuth("/settings/security", SECURITY_RECENT_AUTH),
        ],
    )


app = create_app()
