"""The provider interface: a provider sees a narrow context, returns an outcome, and may own
routes under the auth prefix; the endpoints map outcomes to DESIGN §17.2's shapes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pytest

from authbridge import Auth, AuthMiddleware
from authbridge.errors import InvalidParams
from authbridge.providers import (
    Outcome,
    Page,
    PasswordProvider,
    ProviderContext,
    ProviderRoute,
    Redirect,
    RouteRequest,
    SignedIn,
    SignInRequest,
    Started,
)
from tests.toolkit.engines import AuthFactory

ORIGIN = "https://testserver"


class ToyProvider:
    """Answers each step kind on demand; its route signs a fixed user in."""

    id = "toy"

    def __init__(self) -> None:
        self.seen: list[SignInRequest] = []
        self.user_id: str | None = None

    def routes(self) -> Sequence[ProviderRoute]:
        return (
            ProviderRoute("toy/page", ("GET",), self._page),
            ProviderRoute("toy/callback", ("GET", "POST"), self._callback),
        )

    async def sign_in(
        self, ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
    ) -> Outcome:
        self.seen.append(request)
        step = params.get("step")
        if step == "redirect":
            request.set_cookie("toy-flow", "abc", max_age=600)
            return Redirect("https://idp.example/authorize?state=abc")
        if step == "started":
            return Started(factor=params.get("factor"))
        if step == "signedIn" and self.user_id is not None:
            return SignedIn(self.user_id)
        raise InvalidParams("unknown step")

    async def _page(self, ctx: ProviderContext, request: RouteRequest) -> Outcome | Page:
        return Page(f"<p>{request.query.get('n', '')}</p>")

    async def _callback(self, ctx: ProviderContext, request: RouteRequest) -> Outcome | Page:
        if request.sign_in.cookies.get("toy-flow") != request.query.get("state"):
            raise InvalidParams("state mismatch")
        assert self.user_id is not None
        return SignedIn(self.user_id, redirect_to="/welcome")


@pytest.fixture
async def toy_setup(auth_factory: AuthFactory) -> tuple[Auth, ToyProvider, httpx.AsyncClient]:
    toy = ToyProvider()
    auth = await auth_factory(
        {"providers": [PasswordProvider(), toy]}, site_url=ORIGIN, allowed_origins=()
    )
    signed_up = await auth.sign_up_with_password("toy@example.com", "correct horse battery")
    toy.user_id = signed_up.user_id

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})

    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=AuthMiddleware(app, auth)),
        base_url=ORIGIN,
        headers={"origin": ORIGIN},
    )
    return auth, toy, client


async def test_a_redirect_outcome_answers_redirect_and_sets_the_providers_cookie(
    toy_setup: tuple[Auth, ToyProvider, httpx.AsyncClient],
) -> None:
    _, _, client = toy_setup
    async with client:
        response = await client.post(
            "/api/auth/signin", json={"provider": "toy", "params": {"step": "redirect"}}
        )
    assert response.status_code == 200
    assert response.json() == {"redirect": "https://idp.example/authorize?state=abc"}
    assert response.headers["set-cookie"].startswith("__Host-toy-flow=abc;")
    assert "HttpOnly" in response.headers["set-cookie"]


async def test_a_form_sign_in_that_redirects_answers_303_to_the_url(
    toy_setup: tuple[Auth, ToyProvider, httpx.AsyncClient],
) -> None:
    _, _, client = toy_setup
    async with client:
        response = await client.post(
            "/api/auth/signin", data={"provider": "toy", "step": "redirect"}
        )
    assert response.status_code == 303
    assert response.headers["location"] == "https://idp.example/authorize?state=abc"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"step": "started"}, {"started": True}),
        ({"step": "started", "factor": "totp"}, {"started": True, "factor": "totp"}),
    ],
)
async def test_a_started_outcome_answers_started_without_a_session(
    toy_setup: tuple[Auth, ToyProvider, httpx.AsyncClient],
    params: dict[str, str],
    expected: dict[str, Any],
) -> None:
    _, _, client = toy_setup
    async with client:
        response = await client.post("/api/auth/signin", json={"provider": "toy", "params": params})
    assert response.json() == expected
    assert "authbridge.jwt" not in response.headers.get("set-cookie", "")


async def test_a_signed_in_outcome_starts_a_session_and_the_provider_sees_the_client(
    toy_setup: tuple[Auth, ToyProvider, httpx.AsyncClient],
) -> None:
    auth, toy, client = toy_setup
    async with client:
        response = await client.post(
            "/api/auth/signin",
            json={"provider": "toy", "params": {"step": "signedIn"}},
            headers={"user-agent": "toy-agent"},
        )
        again = await client.post(
            "/api/auth/signin", json={"provider": "toy", "params": {"step": "signedIn"}}
        )
    body = response.json()
    assert body["signedIn"] is True and body["userId"] == toy.user_id
    assert toy.seen[0].user_agent == "toy-agent" and toy.seen[0].user_id is None
    # The second attempt comes from a signed-in browser: the provider is told who it is.
    assert toy.seen[1].user_id == toy.user_id
    assert toy.seen[1].session_id == body["sessionId"]
    assert await auth.get_session(body["sessionId"]) is None  # replaced by the new session
    assert again.json()["sessionId"] != body["sessionId"]


async def test_a_provider_route_serves_a_page(
    toy_setup: tuple[Auth, ToyProvider, httpx.AsyncClient],
) -> None:
    _, _, client = toy_setup
    async with client:
        response = await client.get("/api/auth/toy/page", params={"n": "7"})
        wrong_method = await client.post("/api/auth/toy/page")
    assert response.status_code == 200
    assert response.text == "<p>7</p>"
    assert response.headers["content-type"].startswith("text/html")
    assert wrong_method.status_code == 405


async def test_a_provider_route_that_signs_in_sets_cookies_and_redirects(
    toy_setup: tuple[Auth, ToyProvider, httpx.AsyncClient],
) -> None:
    _, _, client = toy_setup
    async with client:
        # On https a provider's cookies are __Host- cookies (set_cookie adds the prefix).
        client.cookies.set("__Host-toy-flow", "abc")
        response = await client.get("/api/auth/toy/callback", params={"state": "abc"})
        me = await client.get("/api/auth/sessions")
    assert response.status_code == 303
    assert response.headers["location"] == "/welcome"
    # The browser is signed in (the sign-up's own session is the other one listed).
    assert me.status_code == 200
    assert [s["current"] for s in me.json()["sessions"]].count(True) == 1


async def test_on_https_a_provider_ignores_cookies_without_the_host_prefix(
    toy_setup: tuple[Auth, ToyProvider, httpx.AsyncClient],
) -> None:
    """A sibling subdomain can plant ``toy-flow`` but never ``__Host-toy-flow``."""
    _, _, client = toy_setup
    async with client:
        client.cookies.set("toy-flow", "abc")
        response = await client.get("/api/auth/toy/callback", params={"state": "abc"})
    assert response.headers["location"].endswith("?error=InvalidParams")


async def test_a_failing_provider_route_sends_the_browser_to_the_sign_in_page_with_the_code(
    toy_setup: tuple[Auth, ToyProvider, httpx.AsyncClient],
) -> None:
    auth, _, client = toy_setup
    async with client:
        response = await client.get("/api/auth/toy/callback", params={"state": "forged"})
    assert response.status_code == 303
    assert response.headers["location"] == f"{auth.config.sign_in_path}?error=InvalidParams"


async def test_a_step_that_is_not_a_session_is_refused_by_the_session_only_api(
    toy_setup: tuple[Auth, ToyProvider, httpx.AsyncClient],
) -> None:
    auth, _, _ = toy_setup
    with pytest.raises(InvalidParams):
        await auth.sign_in("toy", {"step": "started"})
    assert isinstance(await auth.sign_in_step("toy", {"step": "started"}, SignInRequest()), Started)


async def test_two_providers_claiming_one_route_are_refused(auth_factory: AuthFactory) -> None:
    from authbridge.errors import ConfigError

    with pytest.raises(ConfigError):
        await auth_factory({"providers": [ToyProvider(), ToyProvider()]})
