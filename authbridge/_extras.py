"""Optional dependencies: one check that names the ``pip install`` extra to add."""

from __future__ import annotations

import importlib.util

from .errors import ConfigError

__all__ = ["MissingExtra", "require"]


class MissingExtra(ConfigError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def require(module: str, extra: str, purpose: str) -> None:
    """Check that ``module`` can be imported.

    Raises:
        MissingExtra: it cannot; the message says ``pip install 'authbridge[<extra>]'``.
    """
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(
            f"{purpose} needs the {module!r} package, which is not installed: "
            f"pip install 'authbridge[{extra}]'"
        )
