"""``authbridge.fetch`` sends the signed-in user's JWT only where it belongs: the page's own
origin, the server's allowed origins (passed in the bootstrap) and the origins the page lists in
``authbridge.trustedOrigins``. Any other URL is fetched untouched, in Chromium."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .conftest import Server
from .pages import sign_up

ALLOWED = "https://allowed.example"
TRUSTED = "https://trusted.example"
OTHER = "https://other.example"


@pytest.fixture(scope="module")
def server(server_factory: Callable[..., Server]) -> Server:
    return server_factory("shared", allowed_origins=ALLOWED)


@pytest.fixture
def page(server: Server, context: Any, email_factory: Callable[[str], str]) -> Iterator[Any]:
    """A signed-in page whose requests to the three outside origins are answered by the test
    (nothing leaves the machine), recording the Authorization header each one carried."""
    seen: dict[str, str | None] = {}

    def answer(route: Any) -> None:
        request = route.request
        seen[request.url] = request.all_headers().get("authorization")
        route.fulfill(
            status=200,
            body="{}",
            content_type="application/json",
            headers={"access-control-allow-origin": "*", "access-control-allow-headers": "*"},
        )

    for origin in (ALLOWED, TRUSTED, OTHER):
        context.route(origin + "/**", answer)
    page = context.new_page()
    sign_up(page, server.url, email_factory("fetch"))
    page.seen = seen
    yield page


def authorization_sent(page: Any, url: str) -> str | None:
    page.seen.pop(url, None)
    page.evaluate("url => window.authbridge.fetch(url).then(r => r.status)", url)
    assert url in page.seen, f"{url} was not requested"
    value: str | None = page.seen[url]
    return value


def test_fetch_sends_the_token_to_the_page_s_own_origin(page: Any) -> None:
    with page.expect_request("**/api/whoami") as request_info:
        status = page.evaluate("() => window.authbridge.fetch('/api/whoami').then(r => r.status)")
    assert status == 200
    header = request_info.value.all_headers().get("authorization")
    assert header is not None and header.startswith("Bearer ey")


def test_fetch_never_sends_the_token_to_another_origin(page: Any) -> None:
    assert authorization_sent(page, OTHER + "/data") is None
    assert authorization_sent(page, OTHER + "/data?x=" + ALLOWED) is None


def test_fetch_sends_the_token_to_the_server_s_allowed_origins(page: Any) -> None:
    header = authorization_sent(page, ALLOWED + "/data")
    assert header is not None and header.startswith("Bearer ey")


def test_fetch_sends_the_token_to_origins_the_page_trusts(page: Any) -> None:
    assert authorization_sent(page, TRUSTED + "/data") is None
    page.evaluate(f"() => {{ window.authbridge.trustedOrigins = [{TRUSTED!r} + '/']; }}")
    header = authorization_sent(page, TRUSTED + "/data")
    assert header is not None and header.startswith("Bearer ey")
    assert authorization_sent(page, OTHER + "/data") is None
