"""Known devices: a signed, HttpOnly cookie naming the account a browser signed in to.

Ten wrong guesses from anywhere empty an account's bucket of failed attempts; a browser holding
this cookie for that very account draws on a bucket of its own instead, so an attacker elsewhere
cannot lock the owner out of their own browser. The cookie is signed with a key derived from the
JWT signing keys (rotating those keys forgets known devices; they are learned again at the next
successful sign-in) and says nothing a guesser could use: it only names an account the browser
already proved it can sign in to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence

__all__ = ["DEVICE_COOKIE", "KnownDevices"]

DEVICE_COOKIE = "authbridge.device"
"""The cookie's name (``__Host-`` prefixed on https)."""

DEVICE_COOKIE_MAX_AGE = 400 * 24 * 3600
"""How long a browser stays known without signing in again (the most browsers keep a cookie)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class KnownDevices:
    """Signs and reads known-device cookie values.

    Args:
        secrets: HMAC keys, at least one: the first signs, all verify.
    """

    def __init__(self, secrets: Sequence[bytes]) -> None:
        self._secrets = tuple(secrets)

    def issue(self, account: str, device_id: str | None = None) -> str:
        """A cookie value binding this browser (``device_id``, new if ``None``) to ``account``."""
        payload = _b64(
            json.dumps(
                {"d": device_id or secrets.token_urlsafe(16), "a": account}, separators=(",", ":")
            ).encode("utf-8")
        )
        return f"{payload}.{self._sign(self._secrets[0], payload)}"

    def read(self, value: str | None) -> tuple[str, str] | None:
        """``(device_id, account)`` from a genuine cookie value, else ``None`` (never raises)."""
        # Cookies are read as latin-1: a non-ASCII value is no signature (and would not encode).
        if not value or len(value) > 1024 or not value.isascii() or value.count(".") != 1:
            return None
        payload, signature = value.split(".")
        if not any(
            hmac.compare_digest(signature, self._sign(key, payload)) for key in self._secrets
        ):
            return None
        # Genuinely signed, so issue() wrote it (the key is derived for this purpose alone).
        data = json.loads(_unb64(payload))
        return data["d"], data["a"]

    @staticmethod
    def _sign(key: bytes, payload: str) -> str:
        return _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())
