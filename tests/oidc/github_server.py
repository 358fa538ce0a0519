"""A small GitHub-shaped OAuth 2 server for the ``github`` preset's code path (endpoint overrides).

It behaves like github.com where authbridge depends on it, and no more: ``GET
/login/oauth/authorize`` shows an "Authorize" page (any login name), whose form answers with a
redirect carrying ``code`` and ``state``; ``POST /login/oauth/access_token`` exchanges a code once
(client secret, exact ``redirect_uri``, PKCE S256) and answers JSON when asked (errors as 200 +
``{"error": ...}``, as GitHub does); ``GET /user`` and ``GET /user/emails`` need the access token.
No ID tokens, no ``iss`` parameter. Login ``<name>``: primary e-mail ``<name>@example.test``,
verified unless the name starts with ``unverified``; every user also has a verified secondary
address ``<name>@work.example.test``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

Receive = Any
Send = Any


@dataclass
class _Grant:
    login: str
    client_id: str
    redirect_uri: str
    challenge: str | None
    scope: str
    expires: float
    used: bool = False


@dataclass
class GitHubServer:
    """State of the fake GitHub; one client registered by the test."""

    client_id: str = "gh-client"
    client_secret: str = field(default_factory=lambda: secrets.token_hex(20))
    redirect_uris: list[str] = field(default_factory=list)
    url: str = ""
    requests: Counter[str] = field(default_factory=Counter)
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    def user(self, login: str) -> dict[str, Any]:
        return {
            "id": zlib.crc32(login.encode()) + 1000,
            "login": login,
            "name": f"Octo {login}",
            "email": None,  # most users keep their e-mail private: /user/emails has it
            "avatar_url": f"https://avatars.example.test/{login}.png",
        }

    def emails(self, login: str) -> list[dict[str, Any]]:
        return [
            {
                "email": f"{login}@work.example.test",
                "primary": False,
                "verified": True,
                "visibility": None,
            },
            {
                "email": f"{login}@example.test",
                "primary": True,
                "verified": not login.startswith("unverified"),
                "visibility": "private",
            },
        ]

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        self.requests[path] += 1
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        form = dict(parse_qsl(body.decode())) if body else {}
        if path == "/login/oauth/authorize" and method == "GET":
            await self._authorize_page(send, query)
        elif path == "/login/oauth/authorize" and method == "POST":
            await self._decide(send, form)
        elif path == "/login/oauth/access_token" and method == "POST":
            await self._token(send, form, headers)
        elif path in ("/user", "/user/emails") and method == "GET":
            await self._api(send, path, headers)
        else:
            await _send(send, 404, b'{"message":"Not Found"}', "application/json")

    async def _authorize_page(self, send: Send, query: dict[str, str]) -> None:
        if query.get("client_id") != self.client_id:
            await _send(send, 404, b"unknown application", "text/plain")
            return
        if query.get("redirect_uri") not in self.redirect_uris:
            await _send(send, 400, b"redirect_uri mismatch", "text/plain")
            return
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in query.items()
        )
        page = (
            "<!doctype html><title>Authorize application</title>"
            '<form method="post" action="/login/oauth/authorize" id="authorize">'
            f'{hidden}<input name="login" placeholder="GitHub login" required>'
            '<button name="decision" value="allow" type="submit">Authorize</button>'
            '<button name="decision" value="deny" type="submit" formnovalidate>Cancel</button>'
            "</form>"
        )
        await _send(send, 200, page.encode(), "text/html; charset=utf-8")

    async def _decide(self, send: Send, form: dict[str, str]) -> None:
        redirect_uri = form.get("redirect_uri", "")
        if form.get("client_id") != self.client_id or redirect_uri not in self.redirect_uris:
            await _send(send, 400, b"bad request", "text/plain")
            return
        params: dict[str, str] = {}
        if form.get("decision") != "allow":
            params["error"] = "access_denied"
            params["error_description"] = "The user has denied your application access."
        else:
            challenge = form.get("code_challenge")
            if challenge is not None and form.get("code_challenge_method") != "S256":
                challenge = None
            code = secrets.token_hex(10)
            self._codes[code] = _Grant(
                form.get("login") or "octocat",
                self.client_id,
                redirect_uri,
                challenge,
                form.get("scope", ""),
                time.monotonic() + 600,
            )
            params["code"] = code
        if "state" in form:
            params["state"] = form["state"]
        location = redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(params)
        await send(
            {
                "type": "http.response.start",
                "status": 302,
                "headers": [(b"location", location.encode())],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _token(self, send: Send, form: dict[str, str], headers: dict[str, str]) -> None:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            decoded = base64.b64decode(basic[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        wants_json = "application/json" in headers.get("accept", "")
        if client_id != self.client_id or secret != self.client_secret:
            await _reply(send, wants_json, {"error": "incorrect_client_credentials"})
            return
        grant = self._codes.get(form.get("code", ""))
        if grant is None or grant.used or time.monotonic() > grant.expires:
            await _reply(send, wants_json, {"error": "bad_verification_code"})
            return
        grant.used = True  # a code works once, even when the exchange then fails
        if form.get("redirect_uri") not in (None, grant.redirect_uri):
            await _reply(send, wants_json, {"error": "redirect_uri_mismatch"})
            return
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if not secrets.compare_digest(computed, grant.challenge):
                await _reply(send, wants_json, {"error": "bad_verification_code"})
                return
        token = "gho_" + secrets.token_hex(18)
        self._tokens[token] = grant.login
        await _reply(
            send, wants_json, {"access_token": token, "token_type": "bearer", "scope": grant.scope}
        )

    async def _api(self, send: Send, path: str, headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        login = self._tokens.get(token) if scheme.lower() in ("bearer", "token") else None
        if login is None:
            body = b'{"message":"Requires authentication"}'
            await _send(send, 401, body, "application/json")
            return
        document: Any = self.user(login) if path == "/user" else self.emails(login)
        await _send(send, 200, json.dumps(document).encode(), "application/json")


async def _reply(send: Send, wants_json: bool, document: dict[str, str]) -> None:
    if wants_json:
        await _send(send, 200, json.dumps(document).encode(), "application/json")
    else:
        await _send(send, 200, urlencode(document).encode(), "application/x-www-form-urlencoded")


async def _send(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
