"""The apps authbridge is measured with, in-process and behind uvicorn.

The inner app is plain Starlette, like the ``starlette-bare`` reference, with a few routes:

* ``/`` - ``hello, world`` (does not look at auth: the middleware's pure overhead);
* ``/me`` - ``hello, <user id>`` read with ``get_auth_user_id`` (401 when anonymous, so a
  broken scenario shows up as errors instead of fast anonymous requests);
* ``/page`` and ``/page-auth`` - a small server-rendered Jinja2 page (Starlette's
  ``Jinja2Templates``), the second one reading ``auth`` in the template.

``auth`` reaches the template through ``authbridge.ssr.install(env)`` when that module exists,
otherwise through the template context (``{"auth": scope["auth"]}``).

Importable by uvicorn as ``bench.scenarios.authbridge_app:app_from_env`` (with ``--factory``):
the database URL and the signing key come from the environment.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from authbridge import Auth, AuthConfig, AuthMiddleware, get_auth_state, get_auth_user_id

ENV_DATABASE_URL = "BENCH_AB_DATABASE_URL"
ENV_PRIVATE_PEM = "BENCH_AB_PRIVATE_PEM"
ENV_FIRST_ROUTE = "BENCH_AB_FIRST_ROUTE"

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body>
<header>{% block header %}<a href="/">Home</a>{% endblock %}</header>
<main><h1>{{ title }}</h1>
<ul>{% for note in notes %}<li id="n{{ loop.index }}">{{ note }}</li>{% endfor %}</ul>
</main></body></html>
"""
_PAGE = """{% extends "base.html" %}
{% block header %}{% if signed_in %}<span>Signed in as {{ user_id }}</span>
<form method="post" action="/api/auth/signout"><button>Sign out</button></form>
{% else %}<a href="/signin">Sign in</a>{% endif %}{% endblock %}"""
_PAGE_AUTH = """{% extends "base.html" %}
{% block header %}{% if auth.is_authenticated %}<span>Signed in as {{ auth.user_id }}</span>
<form method="post" action="/api/auth/signout"><button>Sign out</button></form>
{% else %}<a href="/signin">Sign in</a>{% endif %}{% endblock %}"""
NOTES = tuple(f"note number {i} <with> & markup" for i in range(10))
AUTH_PAGE_MARKER = "Signed in as "


def ssr_mode() -> str:
    """``"authbridge.ssr.install"`` when the SSR module is available, else ``"context"``."""
    try:
        module = importlib.import_module("authbridge.ssr")
    except ImportError:
        return "context"
    return "authbridge.ssr.install" if callable(getattr(module, "install", None)) else "context"


def make_templates(install: bool = True) -> tuple[Jinja2Templates, str]:
    """Templates for the pages; ``install=False`` leaves the environment plain (the bare row)."""
    env = jinja2.Environment(
        loader=jinja2.DictLoader({"base.html": _BASE, "page.html": _PAGE, "auth.html": _PAGE_AUTH}),
        autoescape=True,
    )
    templates = Jinja2Templates(env=env)
    mode = ssr_mode() if install else "context"
    if mode != "context":
        importlib.import_module("authbridge.ssr").install(templates.env)
    return templates, mode


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello, world")


async def me(request: Request) -> PlainTextResponse:
    user_id = get_auth_user_id(request)
    if user_id is None:
        return PlainTextResponse("anonymous", status_code=401)
    return PlainTextResponse(f"hello, {user_id}")


def make_inner_app(first: str = "/", *, install: bool = True) -> Starlette:
    """The app behind the middleware (also servable bare, for the SSR reference row).

    ``first`` is the path of the route listed first: Starlette tries routes in order, so the
    measured route comes first, as ``/`` does in the one-route ``starlette-bare`` app.
    ``install=False``: a plain Jinja2 environment, without ``authbridge.ssr.install``.
    """
    templates, mode = make_templates(install)

    async def page(request: Request) -> Response:
        # The same markup as auth.html, from plain variables instead of ``auth``.
        context: dict[str, Any] = {
            "title": "Notes",
            "notes": NOTES,
            "signed_in": True,
            "user_id": "someone",
        }
        return templates.TemplateResponse(request, "page.html", context)

    async def page_auth(request: Request) -> Response:
        context: dict[str, Any] = {"title": "Notes", "notes": NOTES}
        if mode == "context":
            context["auth"] = get_auth_state(request)
        return templates.TemplateResponse(request, "auth.html", context)

    routes = [
        Route("/", hello),
        Route("/me", me),
        Route("/page", page),
        Route("/page-auth", page_auth),
    ]
    routes.sort(key=lambda route: route.path != first)
    return Starlette(routes=routes)


def make_app(auth: Auth, first: str = "/") -> AuthMiddleware:
    return AuthMiddleware(make_inner_app(first), auth)


def app_from_env() -> AuthMiddleware:
    """uvicorn ``--factory`` entry point (database and key from the environment)."""
    config = AuthConfig(
        database_url=os.environ[ENV_DATABASE_URL],
        jwt_private_keys=(os.environ[ENV_PRIVATE_PEM],),
    )
    return make_app(Auth(config), first=os.environ.get(ENV_FIRST_ROUTE, "/"))
