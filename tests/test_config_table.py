"""The configuration tables in the README and the docs cannot drift from ``AuthConfig``: they list
exactly the variables ``AuthConfig.from_env()`` reads, and each default they state, when set
explicitly, gives the same configuration as leaving the variable unset."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from authbridge import AuthConfig

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "docs" / "configuration.md"]
ROW = re.compile(r"^\| `(AUTHBRIDGE_[A-Z0-9_]+)` \| (.+?) \|", re.M)
LITERAL = re.compile(r"^`([^`]+)`$")


class RecordingEnviron(Mapping[str, str]):
    """An empty environment that remembers which variables were asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return default

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def variables_read() -> set[str]:
    environ = RecordingEnviron()
    AuthConfig.from_env(environ)
    return {name for name in environ.asked if name.startswith("AUTHBRIDGE_")}


def table(page: Path) -> dict[str, str]:
    rows = ROW.findall(page.read_text(encoding="utf-8"))
    found = dict(rows)
    assert len(found) == len(rows), f"{page.name}: a variable is listed twice"
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_table_lists_exactly_the_variables_from_env_reads(page: Path) -> None:
    assert set(table(page)) == variables_read()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_each_stated_default_is_the_default(page: Path) -> None:
    unset = AuthConfig.from_env({})
    stated = 0
    for name, default in table(page).items():
        literal = LITERAL.match(default.strip())
        if literal is None:  # "*(none: ...)*": nothing to set
            assert default.strip().startswith("*("), f"{name}: write `value` or *(explanation)*"
            continue
        stated += 1
        assert AuthConfig.from_env({name: literal[1]}) == unset, name
    assert stated >= 10


def test_a_wrong_default_in_a_table_would_be_caught() -> None:
    """The check above can fail: stating 2h for the JWT lifetime changes the config."""
    assert AuthConfig.from_env({"AUTHBRIDGE_JWT_DURATION": "2h"}) != AuthConfig.from_env({})
