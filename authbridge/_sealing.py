"""Sealing refresh-token secrets for the few seconds a lost response may need them.

A rotated child token's secret is random; to hand the same child to a retry of its parent within
the reuse window, the secret is kept AES-256-GCM encrypted next to the token (bound to the token
id) until the window closes. The key is derived with HKDF-SHA256 from the JWT signing keys'
private material, which never lives in the table: every private key can open (rotation), the
newest seals.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigError
from .tokens import SigningKey

__all__ = ["SecretSealer"]

_INFO = b"authbridge/refresh-secret-seal/v1"
_NONCE = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SecretSealer:
    """Seals and opens refresh-token secrets with keys derived from signing keys."""

    def __init__(self, materials: Iterable[bytes]) -> None:
        """Derive one AES key per secret ``materials`` entry; the last one seals.

        Raises:
            ConfigError: no key material.
        """
        self._keys = [
            AESGCM(HKDF(hashes.SHA256(), 32, salt=None, info=_INFO).derive(m)) for m in materials
        ]
        if not self._keys:
            raise ConfigError("no key material to seal refresh-token secrets with")

    @classmethod
    def from_signing_keys(cls, keys: Iterable[SigningKey]) -> SecretSealer:
        """Keys from the private parts of these signing keys (in order; the last one seals).

        Raises:
            ConfigError: none of the keys has a private part.
        """
        materials = [
            key.private_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            for key in keys
            if key.private_key is not None
        ]
        return cls(materials)

    def seal(self, token_id: str, secret: str) -> str:
        """``secret`` encrypted with the newest key and bound to ``token_id``."""
        nonce = os.urandom(_NONCE)
        sealed = self._keys[-1].encrypt(nonce, secret.encode("ascii"), token_id.encode("ascii"))
        return _b64(nonce + sealed)

    def open(self, token_id: str, sealed: str) -> str | None:
        """The secret sealed for ``token_id``, or ``None`` if no key opens it."""
        try:
            raw = _unb64(sealed)
        except ValueError:
            return None
        nonce, body = raw[:_NONCE], raw[_NONCE:]
        for key in reversed(self._keys):
            try:
                return key.decrypt(nonce, body, token_id.encode("ascii")).decode("ascii")
            except (InvalidTag, ValueError):
                continue
        return None
