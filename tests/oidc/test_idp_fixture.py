"""The IdP fixture itself: it runs, publishes discovery and keys, and accepts registered clients."""

from __future__ import annotations

import json
import urllib.request

from .idp import run_idp


def test_the_idp_publishes_discovery_with_its_own_key_and_s256_pkce_only() -> None:
    with run_idp() as idp:
        with urllib.request.urlopen(idp.issuer + "/.well-known/openid-configuration") as r:
            metadata = json.loads(r.read())
        assert metadata["issuer"] == idp.issuer
        assert metadata["code_challenge_methods_supported"] == ["S256"]
        assert metadata["authorization_response_iss_parameter_supported"] is True
        assert "form_post" in metadata["response_modes_supported"]
        with urllib.request.urlopen(metadata["jwks_uri"]) as r:
            keys = json.loads(r.read())["keys"]
        assert [k["kid"] for k in keys] == [idp.kid]
        assert all("d" not in k for k in keys)
        idp.register(
            [
                {
                    "client_id": "x",
                    "client_secret": "y" * 32,
                    "redirect_uris": ["http://localhost/cb"],
                }
            ]
        )
