"""Route matchers (globs, regexes, callables) and the same-site redirect filter."""

from __future__ import annotations

import re

import httpx
import pytest

from authbridge.routing import RouteMatcher, route_matcher, safe_redirect_path


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("/notes", ["/notes"], ["/notes/", "/notes/1", "/notesx", "/"]),
        ("/notes/*", ["/notes/1", "/notes/"], ["/notes", "/notes/1/edit"]),
        ("/notes/**", ["/notes", "/notes/1", "/notes/1/edit"], ["/notesx", "/note"]),
        ("/**", ["/", "/a", "/a/b/c"], [""]),
        ("/a/**/edit", ["/a/x/edit", "/a/x/y/edit"], ["/a/edit/x"]),
        ("/file?.txt", ["/file1.txt"], ["/file12.txt", "/file/.txt"]),
        ("/price.html", ["/price.html"], ["/priceXhtml"]),
    ],
)
def test_globs(pattern: str, matches: list[str], misses: list[str]) -> None:
    matcher = route_matcher(pattern)
    for path in matches:
        assert matcher(path), path
    for path in misses:
        assert not matcher(path), path


def test_regexes_must_match_the_whole_path() -> None:
    matcher = route_matcher(re.compile(r"/admin/\d+"))
    assert matcher("/admin/42")
    assert not matcher("/admin/42/x")
    assert not matcher("/x/admin/42")


def test_callables_and_lists_combine() -> None:
    matcher = route_matcher(["/a", lambda path: path.endswith(".secret")])
    assert matcher("/a") and matcher("/x/y.secret")
    assert not matcher("/b")


def test_unsupported_patterns_fail_loudly() -> None:
    with pytest.raises(TypeError):
        RouteMatcher([42])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", "/"),
        ("/notes?sort=new&page=2", "/notes?sort=new&page=2"),
        ("/notes#top", "/notes#top"),
        ("/caf\u00e9", "/caf%C3%A9"),
        ("/a b", "/a%20b"),
        ("/already%20encoded", "/already%20encoded"),
        ("/%2F%2Fevil.com", "/%2F%2Fevil.com"),
    ],
)
def test_same_site_paths_are_kept(target: str, expected: str) -> None:
    assert safe_redirect_path(target) == expected


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "///evil.com",
        "https://evil.com",
        "http:evil.com",
        "/\\evil.com",
        "\\/evil.com",
        "/\t/evil.com",
        "/\n/evil.com",
        "/\x00",
        "javascript:alert(1)",
        "evil.com",
        "",
        " /x",
        "/" + "a" * 3000,
        None,
        7,
        ["/"],
    ],
)
def test_anything_else_is_refused(target: object) -> None:
    assert safe_redirect_path(target) is None
    assert safe_redirect_path(target, "/") == "/"


@pytest.mark.parametrize(
    "target",
    ["/..//evil.com", "/.//evil.com", "/%2e%2e//evil.com", "/%5Cevil.com", "/\u3000/evil.com"],
)
def test_tricky_paths_stay_on_the_site(target: str) -> None:
    location = safe_redirect_path(target)
    assert location is not None
    assert httpx.URL("https://site.example/page").join(location).host == "site.example"
