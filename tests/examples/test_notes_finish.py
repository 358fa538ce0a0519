"""The notes demo's finish (issue 19): its stylesheet and favicon, sessions shown as devices with
this one marked and the buttons labelled apart, the banner after a session ended elsewhere, the
sharing mode in the footer, and errors beside the form they belong to. In-process
(``httpx.ASGITransport``); the browser-side parts run in tests/e2e/test_demo_finish.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from authbridge import AuthConfig, AuthMiddleware, SessionInfo
from examples.notes.app import create_app
from examples.notes.display import describe_device, describe_session, time_ago
from tests.toolkit.engines import FAST_PASSWORDS, PASSWORD

from .example_helpers import HTML, Node, parse, unique_email

BASE = "http://127.0.0.1"
CHROME_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
)


@pytest.fixture(params=["shared", "per_tab"])
async def app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuthMiddleware]:
    url = f"sqlite+aiosqlite:///{tmp_path}/notes.db"
    built = create_app(
        AuthConfig(database_url=url, password=FAST_PASSWORDS, session_sharing=request.param)
    )
    yield built
    await built.auth.close()


def browser(app: AuthMiddleware, user_agent: str = CHROME_LINUX) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE,
        headers={"user-agent": user_agent},
    )


async def page(client: httpx.AsyncClient, path: str) -> Node:
    response = await client.get(path, headers=HTML)
    assert response.status_code == 200, response.status_code
    return parse(response.text)


async def form_sign_in(client: httpx.AsyncClient, email: str, flow: str, password: str) -> str:
    response = await client.post(
        "/api/auth/signin",
        data={
            "provider": "password",
            "flow": flow,
            "email": email,
            "password": password,
            "redirectTo": "/",
        },
        headers={"origin": BASE, **HTML},
    )
    assert response.status_code == 303
    return str(response.headers["location"])


# -- the page itself -------------------------------------------------------------------------------


async def test_every_page_links_the_stylesheet_and_favicon_which_are_served(
    app: AuthMiddleware,
) -> None:
    async with browser(app) as client:
        document = await page(client, "/")
        links = {n.attrs["rel"]: n.attrs["href"] for n in document.find_all("link")}
        assert links == {"icon": "/static/favicon.svg", "stylesheet": "/static/notes.css"}
        css = await client.get("/static/notes.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert "prefers-color-scheme: dark" in css.text
        icon = await client.get("/static/favicon.svg")
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"


async def test_footer_names_the_sharing_mode(app: AuthMiddleware) -> None:
    async with browser(app) as client:
        footer = (await page(client, "/")).get("sharing-mode")
        mode = app.auth.config.session_sharing
        assert footer.attrs["data-mode"] == mode
        assert ("one per tab" if mode == "per_tab" else "shared by all tabs") in footer.text()


async def test_every_field_has_a_label_and_the_nav_marks_the_current_page(
    app: AuthMiddleware,
) -> None:
    async with browser(app) as client:
        document = await page(client, "/signin")
        for field in document.find_all("input"):
            if field.attrs.get("type") != "hidden":
                assert any(field in label.iter() for label in document.find_all("label"))
        (nav,) = document.find_all("nav")
        assert [a.attrs.get("aria-current") for a in nav.find_all("a")] == [None, None, None, None]
        (nav,) = (await page(client, "/")).find_all("nav")
        assert [a.attrs.get("aria-current") for a in nav.find_all("a")] == [
            "page",
            None,
            None,
            None,
        ]


# -- errors beside their form ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flow", "password", "code", "form"),
    [
        ("signIn", "wrong password!", "InvalidCredentials", "signin-form"),
        ("signUp", "short", "InvalidPassword", "signup-form"),
    ],
)
async def test_an_error_is_shown_in_the_card_of_the_form_it_belongs_to(
    app: AuthMiddleware, flow: str, password: str, code: str, form: str
) -> None:
    async with browser(app) as client:
        location = await form_sign_in(client, unique_email("err"), flow, password)
        document = await page(client, location)
        (card,) = [s for s in document.find_all("section") if s.attrs.get("data-auth-form") == form]
        assert card.get("auth-error").attrs["data-code"] == code
        assert card.get(form).tag == "form"


# -- sessions as devices ---------------------------------------------------------------------------


async def test_sessions_are_shown_as_devices_with_this_one_marked_and_first(
    app: AuthMiddleware,
) -> None:
    email = unique_email("devices")
    async with browser(app) as laptop, browser(app, FIREFOX_WINDOWS) as other:
        await form_sign_in(laptop, email, "signUp", PASSWORD)
        await form_sign_in(other, email, "signIn", PASSWORD)
        sessions = (await page(laptop, "/sessions")).find_all("li", "session")
    first, second = sessions
    assert first.attrs["data-current"] == "true" and second.attrs["data-current"] == "false"
    assert first.find_all(cls="device")[0].text() == "Chrome on Linux"
    assert second.find_all(cls="device")[0].text() == "Firefox on Windows"
    assert first.find_all(cls="this-device")[0].text() == "This device"
    assert second.find_all(cls="this-device") == []
    assert first.find_all(cls="ip")[0].text() == "127.0.0.1"
    assert "active now" in first.text() and "active just now" in second.text()
    ((mine,), (theirs,)) = (first.find_all("button"), second.find_all("button"))
    assert mine.text().strip() == "Sign out"
    assert theirs.text().strip() == "Sign out that device"


async def test_the_other_device_sees_a_banner_after_being_signed_out_from_here(
    app: AuthMiddleware,
) -> None:
    email = unique_email("ended")
    async with browser(app) as laptop, browser(app, FIREFOX_WINDOWS) as other:
        await form_sign_in(laptop, email, "signUp", PASSWORD)
        await form_sign_in(other, email, "signIn", PASSWORD)
        assert not (await page(other, "/")).has("session-ended")  # signed in: no banner
        await laptop.post(
            "/api/auth/sessions/revoke", data={"others": "true"}, headers={"origin": BASE, **HTML}
        )
        document = await page(other, "/")
        assert document.find_all("body")[0].attrs["data-auth-state"] == "signed-out"
        banner = document.get("session-ended")
        assert "hidden" not in banner.attrs
        assert banner.attrs["data-reason"] == "invalid_refresh_token"
        assert "signed out" in banner.text()
        again = (await page(other, "/")).get("session-ended")  # the cookies are gone now
        assert "hidden" in again.attrs


async def test_a_browser_that_never_signed_in_sees_no_banner(app: AuthMiddleware) -> None:
    async with browser(app) as client:
        banner = (await page(client, "/")).get("session-ended")
        assert "hidden" in banner.attrs and banner.attrs["data-reason"] == ""


# -- the display helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "label"),
    [
        (CHROME_LINUX, "Chrome on Linux"),
        (FIREFOX_WINDOWS, "Firefox on Windows"),
        (SAFARI_IPHONE, "Safari on iOS"),
        (EDGE_WINDOWS, "Edge on Windows"),
        ("curl/8.5.0", "curl"),
        ("python-httpx/0.28.1", "Python"),
        ("SomethingNew/1.0 (Linux)", "Unknown browser on Linux"),
        ("", "Unknown browser"),
        (None, "Unknown browser"),
    ],
)
def test_a_user_agent_reads_as_browser_on_system(user_agent: str | None, label: str) -> None:
    assert describe_device(user_agent) == label


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "just now"),
        (59, "just now"),
        (60, "1 min ago"),
        (3599, "59 min ago"),
        (3600, "1 h ago"),
        (86399, "23 h ago"),
        (86400, "1 day ago"),
        (3 * 86400, "3 days ago"),
        (-5, "just now"),
    ],
)
def test_time_ago_rounds_down_to_the_unit_people_use(seconds: int, text: str) -> None:
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert time_ago(now - timedelta(seconds=seconds), now) == text


def test_a_session_row_becomes_a_device_line() -> None:
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    row: Any = SessionInfo(
        "s1",
        "u1",
        now - timedelta(days=1),
        now - timedelta(minutes=2),
        now + timedelta(days=29),
        FIREFOX_WINDOWS,
        "203.0.113.7",
    )
    device = describe_session(row, current_session_id="other", now=now)
    assert (device.label, device.ip, device.active, device.current) == (
        "Firefox on Windows",
        "203.0.113.7",
        "active 2 min ago",
        False,
    )
    assert describe_session(row, current_session_id="s1", now=now).active == "active now"
