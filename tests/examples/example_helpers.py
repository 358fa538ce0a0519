"""Helpers for the example-app tests: a small HTML tree to assert on page structure.

Sign-up, clients and servers come from the toolkit (``tests/toolkit/``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HTML = {"accept": "text/html,application/xhtml+xml"}
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"})


def unique_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


# -- HTML -----------------------------------------------------------------------------------------


@dataclass
class Node:
    """An element of a parsed page."""

    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    parts: list[str | Node] = field(default_factory=list)

    @property
    def id(self) -> str | None:
        return self.attrs.get("id")

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        """The text content, like the DOM's ``textContent``."""
        return "".join(p if isinstance(p, str) else p.text() for p in self.parts)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
        ]

    def get(self, element_id: str) -> Node:
        found = [n for n in self.iter() if n.id == element_id]
        assert len(found) == 1, f"expected one #{element_id}, found {len(found)}"
        return found[0]

    def has(self, element_id: str) -> bool:
        return any(n.id == element_id for n in self.iter())

    def fields(self) -> dict[str, str]:
        """A form's named inputs: name -> value."""
        return {n.attrs["name"]: n.attrs.get("value", "") for n in self.find_all("input")}

    def input_types(self) -> dict[str, str]:
        return {n.attrs["name"]: n.attrs.get("type", "text") for n in self.find_all("input")}

    def submit_buttons(self) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (n.tag == "button" and n.attrs.get("type", "submit") == "submit")
            or (n.tag == "input" and n.attrs.get("type") == "submit")
        ]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v if v is not None else "" for k, v in attrs})
        parent = self.stack[-1]
        parent.children.append(node)
        parent.parts.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def parse(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def island(page: Node) -> dict[str, Any]:
    """The JSON state island of a page."""
    data: dict[str, Any] = json.loads(page.get("authbridge-state").text())
    return data
