"""A software passkey authenticator: a P-256 key that builds the authenticator data, client
data and signatures a browser would send (``none`` attestation) for the options the server
gives, so every check the server makes can be met or broken on purpose."""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

__all__ = ["AT", "ORIGIN", "RP_ID", "UP", "UV", "Authenticator"]

ORIGIN = "https://testserver"
"""The origin the assertions claim: ``client_factory``'s default base URL (``SITE_URL``)."""
RP_ID = "testserver"
"""The relying party id: ``ORIGIN``'s host."""
UP, UV, AT = 0x01, 0x04, 0x40
"""Authenticator data flags: user present, user verified, attested credential data."""


@dataclass
class Authenticator:
    """One discoverable credential on a software authenticator."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    sign_count: int = 0
    user_handle: bytes = b""

    @property
    def id(self) -> str:
        return bytes_to_base64url(self.credential_id)

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return bytes(
            cbor2.dumps(
                {
                    1: 2,  # kty: EC2
                    3: -7,  # alg: ES256
                    -1: 1,  # crv: P-256
                    -2: numbers.x.to_bytes(32, "big"),
                    -3: numbers.y.to_bytes(32, "big"),
                }
            )
        )

    def _auth_data(self, flags: int, attested: bool, rp_id: str) -> bytes:
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags])
        data += struct.pack(">I", self.sign_count)
        if attested:
            data += bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id
            data += self._cose_key()
        return data

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode()

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str = ORIGIN,
        flags: int = UP | UV | AT,
    ) -> dict[str, Any]:
        """``navigator.credentials.create()``: a registration response for these options."""
        self.user_handle = base64url_to_bytes(options["user"]["id"])
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        attestation = cbor2.dumps(
            {"fmt": "none", "attStmt": {}, "authData": self._auth_data(flags, True, RP_ID)}
        )
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": bytes_to_base64url(client_data),
                "attestationObject": bytes_to_base64url(attestation),
                "transports": ["internal", 7],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        flags: int = UP | UV,
        count_up: bool = True,
        user_handle: Any = None,
        tamper: bool = False,
    ) -> dict[str, Any]:
        """``navigator.credentials.get()``: an assertion for these options."""
        if count_up:
            self.sign_count += 1
        client_data = self._client_data("webauthn.get", options["challenge"], ORIGIN)
        auth_data = self._auth_data(flags, False, options["rpId"])
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        if tamper:
            signature = self.key.sign(signed + b"x", ec.ECDSA(hashes.SHA256()))
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": bytes_to_base64url(client_data),
                "authenticatorData": bytes_to_base64url(auth_data),
                "signature": bytes_to_base64url(signature),
                "userHandle": bytes_to_base64url(self.user_handle)
                if user_handle is None
                else user_handle,
            },
            "clientExtensionResults": {},
        }
