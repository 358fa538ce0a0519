"""per_tab sessions on the server: slot selection (header, form field, hint cookie), hint
consumption and re-arming, LRU slot eviction, and the browser-wide fallback (DESIGN §11)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from authbridge import Auth, AuthMiddleware
from tests.toolkit.clients import ClientFactory
from tests.toolkit.engines import PASSWORD

from .conftest import (
    FORM_CT,
    JWT,
    REFRESH,
    cookie_value,
    jar_cookies,
    row_counts,
    set_cookies,
    starlette_app,
)

TAB_A, TAB_B, TAB_C = "tabaaaaaaa", "tabbbbbbbb", "tabccccccc"
HINT = "authbridge.tab"
TABS = "__Host-authbridge.tabs"
NAVIGATE = {"sec-fetch-mode": "navigate", "sec-fetch-site": "same-origin"}
SCRIPT = {"sec-fetch-mode": "cors", "sec-fetch-site": "same-origin"}


@pytest.fixture
async def per_tab_auth(auth_factory: Any) -> Auth:
    auth: Auth = await auth_factory(session_sharing="per_tab", max_tab_slots=2)
    return auth


@pytest.fixture
async def browser(per_tab_auth: Auth, client_factory: ClientFactory) -> httpx.AsyncClient:
    return client_factory(AuthMiddleware(starlette_app(), per_tab_auth))


async def sign_up_in_tab(client: httpx.AsyncClient, tab: str, email: str) -> httpx.Response:
    response = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": email, "password": PASSWORD},
        },
        headers={"x-authbridge-tab": tab},
    )
    assert response.status_code == 200, response.text
    return response


async def who(client: httpx.AsyncClient, **headers: str) -> str | None:
    user_id: str | None = (await client.get("/whoami", headers=headers)).json()["userId"]
    return user_id


async def test_each_tab_header_selects_its_own_slot(browser: httpx.AsyncClient) -> None:
    ada = (await sign_up_in_tab(browser, TAB_A, "ada@example.com")).json()["userId"]
    bob = (await sign_up_in_tab(browser, TAB_B, "bob@example.com")).json()["userId"]
    assert await who(browser, **{"x-authbridge-tab": TAB_A}) == ada
    assert await who(browser, **{"x-authbridge-tab": TAB_B}) == bob
    assert await who(browser, **{"x-authbridge-tab": TAB_C}) is None  # a new tab: signed out
    assert await who(browser) is None  # no tab named: the (empty) browser-wide slot
    assert {f"{JWT}.{TAB_A}", f"{REFRESH}.{TAB_B}"} <= set(jar_cookies(browser))
    assert JWT not in jar_cookies(browser)


async def test_signing_out_one_tab_leaves_the_other_signed_in(browser: httpx.AsyncClient) -> None:
    await sign_up_in_tab(browser, TAB_A, "ada@example.com")
    bob = (await sign_up_in_tab(browser, TAB_B, "bob@example.com")).json()["userId"]
    out = await browser.post("/api/auth/signout", headers={"x-authbridge-tab": TAB_A})
    assert out.status_code == 200
    assert await who(browser, **{"x-authbridge-tab": TAB_A}) is None
    assert await who(browser, **{"x-authbridge-tab": TAB_B}) == bob
    assert jar_cookies(browser)[TABS] == TAB_B


async def test_a_form_names_its_tab_and_the_redirect_re_arms_the_hint(
    browser: httpx.AsyncClient,
) -> None:
    body = f"provider=password&flow=signUp&email=ada%40example.com&password={PASSWORD}"
    response = await browser.post(
        "/api/auth/signin",
        content=f"{body}&redirectTo=%2Fnotes&authbridge_tab={TAB_A}",
        headers={**FORM_CT, **NAVIGATE},
    )
    assert response.status_code == 303
    cookies = set_cookies(response)
    assert f"{REFRESH}.{TAB_A}" in cookies
    assert REFRESH not in cookies
    assert cookies[HINT].startswith(f"{HINT}={TAB_A};")
    assert "HttpOnly" not in cookies[HINT]
    # The follow-up GET carries the re-armed hint, is served for the tab and consumes it.
    follow = await browser.get("/notes", headers=NAVIGATE)
    assert follow.json()["authenticated"] is True
    assert set_cookies(follow)[HINT].startswith(f"{HINT}=;")


async def test_the_hint_serves_navigations_only_and_only_they_consume_it(
    browser: httpx.AsyncClient,
) -> None:
    ada = (await sign_up_in_tab(browser, TAB_A, "ada@example.com")).json()["userId"]
    jar = {**jar_cookies(browser), HINT: TAB_A}
    cookie = {"cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}

    fetched = await browser.get("/whoami", headers={**SCRIPT, **cookie})
    assert fetched.json()["userId"] is None  # another tab's fetch must not take the hint
    assert HINT not in set_cookies(fetched)

    navigated = await browser.get("/whoami", headers={**NAVIGATE, **cookie})
    assert navigated.json()["userId"] == ada
    assert set_cookies(navigated)[HINT].startswith(f"{HINT}=;")


async def test_a_redirected_navigation_re_arms_the_hint_for_its_follow_up(
    auth_factory: Any, client_factory: ClientFactory
) -> None:
    auth = await auth_factory(session_sharing="per_tab")
    browser = client_factory(AuthMiddleware(starlette_app(), auth, protect=["/private"]))
    response = await browser.get(
        "/private", headers={**NAVIGATE, "accept": "text/html", "cookie": f"{HINT}={TAB_A}"}
    )
    assert response.status_code == 303
    assert set_cookies(response)[HINT].startswith(f"{HINT}={TAB_A};")


async def test_the_least_recently_issued_slot_is_evicted(browser: httpx.AsyncClient) -> None:
    await sign_up_in_tab(browser, TAB_A, "ada@example.com")
    await sign_up_in_tab(browser, TAB_B, "bob@example.com")
    response = await sign_up_in_tab(browser, TAB_C, "cy@example.com")
    cleared = set_cookies(response)
    assert cleared[f"{REFRESH}.{TAB_A}"].startswith(f"{REFRESH}.{TAB_A}=;")
    cookies = jar_cookies(browser)
    assert cookies[TABS] == f"{TAB_B}.{TAB_C}"
    assert sorted(n for n in cookies if n.startswith(REFRESH)) == [
        f"{REFRESH}.{TAB_B}",
        f"{REFRESH}.{TAB_C}",
    ]
    assert await who(browser, **{"x-authbridge-tab": TAB_A}) is None


async def test_an_evicted_slot_s_session_is_ended_on_the_server(
    browser: httpx.AsyncClient, per_tab_auth: Auth
) -> None:
    ada = (await sign_up_in_tab(browser, TAB_A, "ada@example.com")).json()
    await sign_up_in_tab(browser, TAB_B, "bob@example.com")
    await sign_up_in_tab(browser, TAB_C, "cy@example.com")  # evicts TAB_A's slot
    assert await per_tab_auth.list_sessions(ada["userId"]) == []
    assert ada["sessionId"] in per_tab_auth.revocations


async def test_a_forged_refresh_token_ends_no_session(per_tab_auth: Auth) -> None:
    ada = await per_tab_auth.sign_up_with_password("ada@example.com", PASSWORD)
    token_id = ada.tokens.refresh_token.split(".")[0]
    forged = f"{token_id}.{'x' * 43}"
    assert await per_tab_auth.sign_out_refresh_tokens([forged, "garbage"]) == 0
    assert len(await per_tab_auth.list_sessions(ada.user_id)) == 1
    assert await per_tab_auth.sign_out_refresh_tokens([ada.tokens.refresh_token]) == 1
    assert await per_tab_auth.list_sessions(ada.user_id) == []


async def test_without_a_tab_id_per_tab_uses_one_browser_wide_slot(
    browser: httpx.AsyncClient,
) -> None:
    body = f"provider=password&flow=signUp&email=ada%40example.com&password={PASSWORD}"
    response = await browser.post("/api/auth/signin", content=body, headers=FORM_CT)
    assert response.status_code == 303
    assert {JWT, REFRESH} <= set(set_cookies(response))
    assert TABS not in set_cookies(response)
    assert await who(browser) is not None


@pytest.mark.parametrize("bad_tab", ["a b", "a,b", "tabbed.dotted", 'tab"quoted"', "sh", "x" * 41])
async def test_slot_cookies_with_malformed_tab_names_are_ignored(
    per_tab_auth: Auth, client_factory: ClientFactory, bad_tab: str
) -> None:
    # A cookie planted by another subdomain, or a broken client, must not turn a sign-in into a
    # 500 after the session was created (orphaning it): such slots are simply not ours.
    client = client_factory(AuthMiddleware(starlette_app(), per_tab_auth))
    planted = f"{REFRESH}.{bad_tab}=planted; {JWT}.{bad_tab}=planted; {TABS}={bad_tab}"
    response = await client.post(
        "/api/auth/signin",
        json={
            "provider": "password",
            "params": {"flow": "signUp", "email": "ada@example.com", "password": PASSWORD},
        },
        headers={"x-authbridge-tab": TAB_A, "cookie": planted},
    )
    assert response.status_code == 200, response.text
    out = set_cookies(response)
    assert {f"{JWT}.{TAB_A}", f"{REFRESH}.{TAB_A}", TABS} <= set(out)
    assert not any(name.endswith(f".{bad_tab}") for name in out)
    assert cookie_value(out[TABS]) == TAB_A
    assert len(await per_tab_auth.list_sessions(response.json()["userId"])) == 1
    counts = await row_counts(per_tab_auth)
    assert (counts["sessions"], counts["users"]) == (1, 1)
