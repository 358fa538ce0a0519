"""A small app with the demo's page contract, for driving the browser client until (and unless)
``examples/notes/app.py`` is available. Run with ``uvicorn fallback_app:app --app-dir tests/e2e``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from html import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from starlette.routing import Route

from authbridge import Auth, AuthConfig, AuthMiddleware, get_auth_state, get_auth_user
from authbridge.endpoints import client_script_url

auth = Auth(AuthConfig.from_env(), create_tables=True)
PREFIX = auth.config.route_prefix
NOTES: dict[str, list[str]] = {}


async def page(request: Request, title: str, body: str) -> HTMLResponse:
    state = get_auth_state(request)
    user = await get_auth_user(request)
    boot = {
        "isAuthenticated": state.is_authenticated,
        "userId": state.user_id,
        "sessionId": state.session_id,
        "expiresAt": int(state.expires_at.timestamp() * 1000) if state.expires_at else None,
        "sharing": auth.config.session_sharing,
        "tab": state.tab,
        "prefix": PREFIX,
    }
    data = json.dumps(boot).replace("<", "\\u003c")
    signed = "signed-in" if state.is_authenticated else "signed-out"
    email = escape(user.email or "") if user else ""
    html = f"""<!doctype html><html><head><title>{escape(title)}</title>
<script id="authbridge-state" type="application/json">{data}</script>
<script src="{client_script_url(PREFIX)}"></script></head>
<body data-auth-state="{signed}">
<nav><a id="nav-home" href="/">Home</a> <a id="nav-notes" href="/notes">Notes</a>
<a id="nav-sessions" href="/sessions">Sessions</a></nav>
<p>User: <span id="user-email">{email}</span> Session:
<span id="session-id">{escape(state.session_id or "")}</span></p>
<form id="signout-form" method="post" action="{PREFIX}/signout">
<input type="hidden" name="redirectTo" value="/"><button>Sign out</button></form>
<h1>{escape(title)}</h1>{body}</body></html>"""
    return HTMLResponse(html)


async def home(request: Request) -> HTMLResponse:
    return await page(request, "Home", "<p>Welcome.</p>")


def _auth_form(form_id: str, flow: str, target: str) -> str:
    return f"""<form id="{form_id}" method="post" action="{PREFIX}/signin">
<input type="hidden" name="provider" value="password">
<input type="hidden" name="flow" value="{flow}">
<input type="hidden" name="redirectTo" value="{escape(target)}">
<input name="email" type="email"><input name="password" type="password">
<button type="submit">{flow}</button></form>"""


async def signin(request: Request) -> HTMLResponse:
    target = request.query_params.get("next", "/")
    error = request.query_params.get("error")
    err = f'<p id="auth-error" data-code="{escape(error)}">{escape(error)}</p>' if error else ""
    body = err + _auth_form("signin-form", "signIn", target)
    body += _auth_form("signup-form", "signUp", target)
    return await page(request, "Sign in", body)


async def notes(request: Request) -> HTMLResponse | RedirectResponse:
    user_id = get_auth_state(request).user_id
    assert user_id is not None
    if request.method == "POST":
        form = await request.form()
        NOTES.setdefault(user_id, []).append(str(form.get("text", "")))
        return RedirectResponse("/notes", status_code=303)
    items = "".join(f'<li class="note">{escape(n)}</li>' for n in NOTES.get(user_id, []))
    body = f"""<ul id="notes">{items}</ul>
<form id="note-form" method="post" action="/notes"><input name="text"><button>Add</button></form>
<button id="stream-button" type="button">Stream</button><pre id="stream-output"></pre>
<script>
document.getElementById("stream-button").addEventListener("click", async () => {{
  const out = document.getElementById("stream-output");
  const res = await authbridge.fetch("/api/stream");
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {{
    const {{ done, value }} = await reader.read();
    if (done) break;
    out.textContent += decoder.decode(value);
  }}
  out.dataset.done = String(res.status);
}});
</script>"""
    return await page(request, "Notes", body)


async def sessions(request: Request) -> HTMLResponse:
    state = get_auth_state(request)
    assert state.user_id is not None
    rows = await auth.list_sessions(state.user_id)
    items = "".join(
        f'<li class="session" data-session-id="{escape(s.session_id)}">{escape(s.session_id)}</li>'
        for s in rows
    )
    return await page(request, "Sessions", f'<ul id="sessions">{items}</ul>')


async def whoami(request: Request) -> JSONResponse:
    state = get_auth_state(request)
    return JSONResponse(
        {
            "userId": state.user_id,
            "sessionId": state.session_id,
            "source": state.source,
            "tab": state.tab,
        }
    )


async def stream(request: Request) -> StreamingResponse:
    state = get_auth_state(request)
    user_id = state.user_id or ""
    source = state.source or ""

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"chunk {i} for {user_id} via {source}\n".encode()
            await asyncio.sleep(0.05)

    return StreamingResponse(chunks(), media_type="text/plain")


routes = [
    Route("/", home),
    Route("/signin", signin),
    Route("/notes", notes, methods=["GET", "POST"]),
    Route("/sessions", sessions),
    Route("/api/whoami", whoami),
    Route("/api/stream", stream),
]
app = AuthMiddleware(
    Starlette(routes=routes),
    auth,
    protect=["/notes", "/sessions", "/api/stream"],
)
