"""What building an ``Auth`` for a test takes: cheap hashing, a signing key, a password."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from authbridge import Auth
from authbridge.testing import FAST_PASSWORDS
from authbridge.tokens import generate_private_key_pem

__all__ = ["FAST_PASSWORDS", "PASSWORD", "AuthFactory", "signing_key"]

PASSWORD = "correct horse battery staple"
"""The password test users sign up with."""

AuthFactory = Callable[..., Awaitable[Auth]]
"""The shared ``auth_factory`` fixture: ``await auth_factory(auth_kwargs=None, **config)``."""


@functools.cache
def signing_key() -> str:
    """One ES256 private key (PEM) for the whole run: server databases need configured keys,
    and generating one per test would only cost time."""
    return generate_private_key_pem("ES256")
