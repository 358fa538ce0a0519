"""Route matchers (Next.js ``createRouteMatcher``) and safe redirect targets."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

__all__ = ["RouteMatcher", "route_matcher", "safe_redirect_path"]

Pattern = str | re.Pattern[str] | Callable[[str], bool]
"""A glob (``"/notes/*"``, ``"/admin/**"``), a compiled regex, or ``path -> bool``."""


class RouteMatcher:
    """Matches request paths against globs, regexes and callables (any match wins)."""

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self._regexes: list[re.Pattern[str]] = []
        self._callables: list[Callable[[str], bool]] = []
        for pattern in patterns:
            if isinstance(pattern, re.Pattern):
                self._regexes.append(pattern)
            elif isinstance(pattern, str):
                self._regexes.append(_glob_to_regex(pattern))
            elif callable(pattern):
                self._callables.append(pattern)
            else:
                raise TypeError(f"unsupported route pattern {pattern!r}")

    def __call__(self, path: str) -> bool:
        """True when ``path`` matches any pattern."""
        return any(r.fullmatch(path) for r in self._regexes) or any(
            c(path) for c in self._callables
        )


def _glob_to_regex(glob: str) -> re.Pattern[str]:
    # "**" crosses "/", "*" does not; a trailing "/**" also matches the bare prefix.
    if glob.endswith("/**"):
        if glob == "/**":
            return re.compile("/.*")
        base = _glob_to_regex(glob[:-3]).pattern
        return re.compile(f"(?:{base})(?:/.*)?")
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out))


def route_matcher(patterns: Iterable[Pattern] | Pattern) -> RouteMatcher:
    """Build a :class:`RouteMatcher` (``route_matcher(["/notes/**", "/settings"])``)."""
    if isinstance(patterns, str | re.Pattern) or callable(patterns):
        return RouteMatcher([patterns])
    return RouteMatcher(patterns)


_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")


def safe_redirect_path(target: Any, default: str | None = None) -> str | None:
    """``target`` if it is a same-site relative path (``/notes?x=1``), else ``default``.

    Rejects absolute URLs, scheme-relative ``//host``, backslashes and control characters, so a
    ``next=`` or ``redirectTo`` parameter can never send the user to another site.
    """
    if not isinstance(target, str) or not target.startswith("/") or len(target) > 2048:
        return default
    if target.startswith("//") or _UNSAFE.search(target) or "/\t" in target:
        return default
    return quote(target, safe="/?&=%#:@!$'()*+,;~-._")
