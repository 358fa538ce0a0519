"""The notes demo (``examples/notes``): its page structure is a contract with the browser tests.

Every contract item runs twice: in-process (``httpx.ASGITransport``) and over HTTP against a
real ``python -m uvicorn examples.notes.app:app`` configured only through ``AUTHBRIDGE_*``
environment variables.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authbridge import AuthConfig, AuthMiddleware
from examples.notes.app import create_app
from tests.toolkit.clients import bearer_token, sign_up
from tests.toolkit.clock import FakeClock
from tests.toolkit.databases import sqlite_url
from tests.toolkit.engines import FAST_PASSWORDS, PASSWORD
from tests.toolkit.servers import run_uvicorn

from .example_helpers import HTML, Node, island, parse, unique_email


class Site:
    """One running notes app and the clients talking to it."""

    def __init__(self, base_url: str, app: AuthMiddleware | None = None) -> None:
        self.base_url = base_url
        self.app = app
        self._clients: list[httpx.AsyncClient] = []

    @property
    def live(self) -> bool:
        """Served by a real uvicorn (not in-process)."""
        return self.app is None

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """A new browser: its own cookie jar."""
        if self.app is not None:
            kwargs["transport"] = httpx.ASGITransport(app=self.app)
        client = httpx.AsyncClient(base_url=self.base_url, **kwargs)
        self._clients.append(client)
        return client

    def form_headers(self, referer_path: str = "/") -> dict[str, str]:
        """What a browser sends with a same-origin form POST."""
        return {"origin": self.base_url, "referer": self.base_url + referer_path, **HTML}

    async def page(self, client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, Node]:
        response = await client.get(path, headers=HTML)
        return response, parse(response.text)

    async def sign_up_form(
        self, client: httpx.AsyncClient, email: str, redirect_to: str = "/"
    ) -> httpx.Response:
        return await client.post(
            "/api/auth/signin",
            data={
                "provider": "password",
                "flow": "signUp",
                "email": email,
                "password": PASSWORD,
                "redirectTo": redirect_to,
            },
            headers=self.form_headers("/signin"),
        )

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
        if self.app is not None:
            await self.app.auth.close()


@pytest.fixture(scope="module")
def notes_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m uvicorn examples.notes.app:app`` on SQLite in a temporary directory."""
    tmp = tmp_path_factory.mktemp("notes-server")
    env = {"AUTHBRIDGE_DATABASE_URL": sqlite_url(tmp, "notes")}
    with run_uvicorn("examples.notes.app:app", tmp / "uvicorn.log", env) as server:
        yield server.url


def in_process_app(tmp_path: Path, **config: Any) -> AuthMiddleware:
    url = sqlite_url(tmp_path, "notes")
    return create_app(AuthConfig(database_url=url, password=FAST_PASSWORDS, **config))


@pytest.fixture(params=["asgi", "uvicorn"])
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    if request.param == "uvicorn":
        running = Site(request.getfixturevalue("notes_server"))
    else:
        running = Site("http://127.0.0.1", in_process_app(tmp_path))
    yield running
    await running.close()


def assert_layout(page: Node, *, signed_in: bool, prefix: str = "/api/auth") -> None:
    """What every HTML page of the demo has."""
    (body,) = page.find_all("body")
    assert body.attrs["data-auth-state"] == ("signed-in" if signed_in else "signed-out")
    (nav,) = page.find_all("nav")
    assert [a.attrs["href"] for a in nav.find_all("a")] == ["/", "/notes", "/sessions", "/account"]
    (head,) = page.find_all("head")
    scripts = head.find_all("script")
    assert [s.attrs.get("id") for s in scripts] == ["authbridge-state", None]
    assert scripts[0].attrs["type"] == "application/json"
    # The version is a hash of the client script, which may change while a server runs.
    assert re.fullmatch(rf"{re.escape(prefix)}/client\.js\?v=[0-9a-f]+", scripts[1].attrs["src"])
    assert island(page)["isAuthenticated"] is signed_in
    assert page.has("user-email") is signed_in
    assert page.has("session-id") is signed_in
    assert page.has("signout-form") is signed_in
    if signed_in:
        form = page.get("signout-form")
        assert form.attrs["method"].lower() == "post"
        assert form.attrs["action"] == f"{prefix}/signout"
        assert form.fields()["redirectTo"] == "/"
        assert form.submit_buttons()


# -- signed out ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/signin", "/signin?next=%2Fnotes"])
async def test_signed_out_pages_have_the_layout(site: Site, path: str) -> None:
    client = site.client()
    response, page = await site.page(client, path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_layout(page, signed_in=False)
    assert island(page) == {
        "isAuthenticated": False,
        "userId": None,
        "sessionId": None,
        "expiresAt": None,
        "sharing": "shared",
        "tab": None,
        "prefix": "/api/auth",
        "refreshMarginMs": 60000,
        "allowedOrigins": [],
    }
    (script,) = [s for s in page.find_all("script") if "src" in s.attrs]
    served = await client.get(script.attrs["src"])
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize("path", ["/notes", "/sessions"])
async def test_protected_pages_redirect_to_sign_in_with_next(site: Site, path: str) -> None:
    response = await site.client().get(path, headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == f"/signin?next=%2F{path[1:]}"


@pytest.mark.parametrize(
    ("query", "redirect_to"),
    [("", "/"), ("?next=%2Fnotes", "/notes"), ("?next=https%3A%2F%2Fevil.example%2F", "/")],
)
async def test_sign_in_page_has_both_forms_honouring_next(
    site: Site, query: str, redirect_to: str
) -> None:
    _, page = await site.page(site.client(), "/signin" + query)
    for form_id, flow in (("signin-form", "signIn"), ("signup-form", "signUp")):
        form = page.get(form_id)
        assert form.attrs["method"].lower() == "post"
        assert form.attrs["action"] == "/api/auth/signin"
        assert form.fields() == {
            "provider": "password",
            "flow": flow,
            "redirectTo": redirect_to,
            "email": "",
            "password": "",
        }
        types = form.input_types()
        assert types["flow"] == types["provider"] == types["redirectTo"] == "hidden"
        assert types["password"] == "password"
        assert form.submit_buttons()
    assert not page.has("auth-error")


# -- forms without JavaScript ----------------------------------------------------------------------


async def test_sign_up_form_signs_in_and_lands_on_next(site: Site) -> None:
    client = site.client()
    email = unique_email("form")
    response = await site.sign_up_form(client, email, redirect_to="/notes")
    assert response.status_code == 303
    assert response.headers["location"] == "/notes"

    response, page = await site.page(client, "/notes")
    assert response.status_code == 200
    assert_layout(page, signed_in=True)
    assert page.get("user-email").text() == email
    state = island(page)
    assert page.get("session-id").text() == state["sessionId"]
    assert state["userId"] and state["expiresAt"] > time.time() * 1000
    assert response.headers["cache-control"] == "private"
    assert "Cookie" in response.headers["vary"]


async def test_sign_in_form_after_sign_up_in_another_browser(site: Site) -> None:
    email = unique_email("again")
    await sign_up(site.client(), email)
    client = site.client()
    response = await client.post(
        "/api/auth/signin",
        data={
            "provider": "password",
            "flow": "signIn",
            "email": email,
            "password": PASSWORD,
            "redirectTo": "/",
        },
        headers=site.form_headers("/signin"),
    )
    assert response.status_code == 303 and response.headers["location"] == "/"
    _, page = await site.page(client, "/")
    assert_layout(page, signed_in=True)
    assert page.get("user-email").text() == email


@pytest.mark.parametrize(
    ("flow", "password", "code"),
    [("signIn", "wrong password!", "InvalidCredentials"), ("signUp", "short", "InvalidPassword")],
)
async def test_sign_in_errors_come_back_to_the_form(
    site: Site, flow: str, password: str, code: str
) -> None:
    client = site.client()
    email = unique_email("error")
    if flow == "signIn":
        await sign_up(site.client(), email)
    response = await client.post(
        "/api/auth/signin",
        data={
            "provider": "password",
            "flow": flow,
            "email": email,
            "password": password,
            "redirectTo": "/notes",
        },
        headers=site.form_headers("/signin?next=%2Fnotes"),
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert urlsplit(location).path == "/signin"
    assert parse_qs(urlsplit(location).query) == {
        "next": ["/notes"],
        "error": [code],
        "flow": [flow],
        "email": [email],
    }

    _, page = await site.page(client, location)
    assert_layout(page, signed_in=False)
    error = page.get("auth-error")
    assert error.attrs["data-code"] == code
    assert error.text().strip()
    assert page.get("signin-form").fields()["redirectTo"] == "/notes"


async def test_duplicate_sign_up_reports_account_exists(site: Site) -> None:
    email = unique_email("dup")
    await sign_up(site.client(), email)
    response = await site.sign_up_form(site.client(), email)
    assert response.status_code == 303
    _, page = await site.page(site.client(), response.headers["location"])
    assert page.get("auth-error").attrs["data-code"] == "AccountExists"


async def test_error_codes_from_the_query_are_never_reflected_raw(site: Site) -> None:
    response, page = await site.page(site.client(), "/signin?error=%3Cscript%3Ex%3C%2Fscript%3E")
    assert "<script>x" not in response.text
    assert page.get("auth-error").attrs["data-code"] == "SignInFailed"


async def test_sign_out_form_signs_out_and_goes_home(site: Site) -> None:
    client = site.client()
    await site.sign_up_form(client, unique_email("bye"))
    _, page = await site.page(client, "/")
    fields = page.get("signout-form").fields()
    response = await client.post("/api/auth/signout", data=fields, headers=site.form_headers())
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    _, page = await site.page(client, "/")
    assert_layout(page, signed_in=False)


# -- notes -----------------------------------------------------------------------------------------


async def test_notes_are_added_by_form_and_private_to_their_owner(site: Site) -> None:
    alice, bob = site.client(), site.client()
    await site.sign_up_form(alice, unique_email("alice"))
    await site.sign_up_form(bob, unique_email("bob"))

    _, page = await site.page(alice, "/notes")
    assert page.get("notes").find_all("li", "note") == []
    form = page.get("note-form")
    assert form.attrs["method"].lower() == "post" and form.attrs["action"] == "/notes"
    assert "text" in form.fields() and form.submit_buttons()

    for text in ("first note", "<b>bold</b> & <script>alert(1)</script>"):
        response = await alice.post("/notes", data={"text": text}, headers=site.form_headers())
        assert response.status_code == 303 and response.headers["location"] == "/notes"

    response, page = await site.page(alice, "/notes")
    notes = page.get("notes").find_all("li", "note")
    assert [n.text() for n in notes] == ["first note", "<b>bold</b> & <script>alert(1)</script>"]
    assert "<script>alert(1)" not in response.text

    _, page = await site.page(bob, "/notes")
    assert page.get("notes").find_all("li", "note") == []


async def test_oversized_note_forms_are_refused(site: Site) -> None:
    client = site.client()
    await site.sign_up_form(client, unique_email("big"))
    response = await client.post("/notes", data={"text": "x" * 20_000}, headers=site.form_headers())
    assert response.status_code == 413
    _, page = await site.page(client, "/notes")
    assert page.get("notes").find_all("li", "note") == []


async def test_posting_a_note_signed_out_is_refused(site: Site) -> None:
    response = await site.client().post("/notes", data={"text": "x"}, headers=site.form_headers())
    assert response.status_code == 401


async def test_notes_page_has_the_stream_button_and_script(site: Site) -> None:
    client = site.client()
    await site.sign_up_form(client, unique_email("stream"))
    _, page = await site.page(client, "/notes")
    assert page.get("stream-button").tag == "button"
    assert page.get("stream-output").find_all("li") == []
    inline = [s.text() for s in page.find_all("script") if "src" not in s.attrs]
    assert any('window.authbridge.fetch("/api/stream"' in s for s in inline)


# -- sessions --------------------------------------------------------------------------------------


async def test_sessions_page_lists_sessions_and_revokes_by_form(site: Site) -> None:
    email = unique_email("devices")
    laptop, phone = site.client(), site.client()
    await site.sign_up_form(laptop, email)
    await sign_in_json(phone, email)

    _, page = await site.page(laptop, "/sessions")
    assert_layout(page, signed_in=True)
    sessions = page.find_all("li", "session")
    assert len(sessions) == 2
    current = [s for s in sessions if s.attrs["data-current"] == "true"]
    assert [s.attrs["data-session-id"] for s in current] == [island(page)["sessionId"]]
    for session in sessions:
        (form,) = session.find_all("form", "revoke-session")
        assert form.attrs["method"].lower() == "post"
        assert form.attrs["action"] == "/api/auth/sessions/revoke"
        assert form.fields() == {
            "sessionId": session.attrs["data-session-id"],
            "redirectTo": "/sessions",
        }
        assert form.submit_buttons()
    others = page.get("revoke-others")
    assert others.attrs["action"] == "/api/auth/sessions/revoke"
    assert others.fields() == {"others": "true", "redirectTo": "/sessions"}

    (other,) = [s for s in sessions if s.attrs["data-current"] == "false"]
    (form,) = other.find_all("form", "revoke-session")
    response = await laptop.post(
        "/api/auth/sessions/revoke", data=form.fields(), headers=site.form_headers("/sessions")
    )
    assert response.status_code == 303 and response.headers["location"] == "/sessions"
    _, page = await site.page(laptop, "/sessions")
    assert len(page.find_all("li", "session")) == 1
    _, page = await site.page(phone, "/")
    assert_layout(page, signed_in=False)


async def test_revoke_others_form_keeps_only_this_session(site: Site) -> None:
    email = unique_email("others")
    laptop, phone, tablet = site.client(), site.client(), site.client()
    await site.sign_up_form(laptop, email)
    await sign_in_json(phone, email)
    await sign_in_json(tablet, email)
    _, page = await site.page(laptop, "/sessions")
    assert len(page.find_all("li", "session")) == 3
    response = await laptop.post(
        "/api/auth/sessions/revoke",
        data=page.get("revoke-others").fields(),
        headers=site.form_headers("/sessions"),
    )
    assert response.status_code == 303
    _, page = await site.page(laptop, "/sessions")
    (only,) = page.find_all("li", "session")
    assert only.attrs["data-current"] == "true"
    for client in (phone, tablet):
        _, page = await site.page(client, "/")
        assert_layout(page, signed_in=False)


async def sign_in_json(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signIn", "email": email, "password": PASSWORD},
        },
    )
    assert response.status_code == 200, response.text


# -- API -------------------------------------------------------------------------------------------


async def test_whoami_answers_cookie_and_bearer_requests(site: Site) -> None:
    client = site.client()
    email = unique_email("api")
    me = await sign_up(client, email)
    expected = {"userId": me["userId"], "sessionId": me["sessionId"], "email": email}

    by_cookie = await client.get("/api/whoami")
    assert by_cookie.status_code == 200
    assert by_cookie.json() == expected

    token = await bearer_token(client)
    by_bearer = await site.client().get("/api/whoami", headers={"authorization": f"Bearer {token}"})
    assert by_bearer.status_code == 200
    assert by_bearer.json() == expected


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer not-a-jwt"}])
async def test_whoami_without_auth_is_401_with_a_bearer_challenge(
    site: Site, headers: dict[str, str]
) -> None:
    response = await site.client().get("/api/whoami", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthenticated"}
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_stream_sends_five_events_with_the_bearer_token(site: Site) -> None:
    client = site.client()
    me = await sign_up(client, unique_email("sse"))
    token = await bearer_token(client)
    arrivals: list[float] = []
    events: list[dict[str, Any]] = []
    async with site.client().stream(
        "GET", "/api/stream", headers={"authorization": f"Bearer {token}"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic())
                events.append(json.loads(line[len("data: ") :]))
    assert events == [{"userId": me["userId"], "n": n} for n in range(1, 6)]
    if site.live:  # ASGITransport buffers; a real server streams each event as it is made
        assert arrivals[-1] - arrivals[0] >= 0.7
        assert min(b - a for a, b in itertools.pairwise(arrivals)) >= 0.1


async def test_stream_without_auth_is_401(site: Site) -> None:
    response = await site.client().get("/api/stream")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


# -- in-process only: time travel and configuration ------------------------------------------------


async def test_page_after_token_expiry_shows_the_refreshed_state(
    tmp_path: Path, clock: FakeClock
) -> None:
    url = sqlite_url(tmp_path, "notes")
    app = create_app(AuthConfig(database_url=url, password=FAST_PASSWORDS), clock=clock)
    site = Site("http://127.0.0.1", app)
    try:
        client = site.client()
        email = unique_email("later")
        await site.sign_up_form(client, email)
        clock.advance(timedelta(hours=1, seconds=1))
        response, page = await site.page(client, "/notes")
        assert response.status_code == 200
        assert_layout(page, signed_in=True)
        assert page.get("user-email").text() == email
        expires = island(page)["expiresAt"]
        assert expires == int((clock.now + timedelta(hours=1)).timestamp() * 1000)
        assert "authbridge.jwt" in response.headers.get("set-cookie", "")
    finally:
        await site.close()


async def test_notes_table_lives_on_the_auth_metadata(tmp_path: Path) -> None:
    app = in_process_app(tmp_path)
    try:
        metadata = app.auth.store.tables.metadata
        assert {"users", "auth_sessions", "notes"} <= set(metadata.tables)
        (fk,) = metadata.tables["notes"].c.user_id.foreign_keys
        assert fk.target_fullname == "users.id"
    finally:
        await app.auth.close()


async def test_demo_reads_its_settings_from_the_environment(tmp_path: Path) -> None:
    """Per-tab sessions and a custom route prefix, set only through AUTHBRIDGE_* variables."""
    env = {
        "AUTHBRIDGE_DATABASE_URL": sqlite_url(tmp_path, "tabs"),
        "AUTHBRIDGE_SESSION_SHARING": "per_tab",
        "AUTHBRIDGE_ROUTE_PREFIX": "/auth",
    }
    with run_uvicorn("examples.notes.app:app", tmp_path / "uvicorn.log", env) as server:
        site = Site(server.url)
        try:
            browser = site.client()
            first, second = {"x-authbridge-tab": "tab-first1"}, {"x-authbridge-tab": "tab-second"}
            email = unique_email("tab")
            response = await browser.post(
                "/auth/signin",
                headers=first,
                json={
                    "provider": "password",
                    "params": {"flow": "signUp", "email": email, "password": PASSWORD},
                },
            )
            assert response.status_code == 200, response.text

            mine = parse((await browser.get("/", headers={**HTML, **first})).text)
            assert_layout(mine, signed_in=True, prefix="/auth")
            assert island(mine)["prefix"] == "/auth"
            assert island(mine)["sharing"] == "per_tab"
            assert island(mine)["tab"] == "tab-first1"
            assert mine.get("user-email").text() == email

            other = parse((await browser.get("/", headers={**HTML, **second})).text)
            assert_layout(other, signed_in=False, prefix="/auth")
            assert island(other)["tab"] == "tab-second"
            signin = parse((await browser.get("/signin", headers=HTML)).text)
            assert signin.get("signin-form").attrs["action"] == "/auth/signin"
        finally:
            await site.close()
