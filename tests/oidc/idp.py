"""The real OpenID provider used by the OAuth tests: ``oidc-provider`` (npm, pinned in
``tests/oidc/package.json`` + lockfile, installed by ``npm ci --prefix tests/oidc``) run by Node on
127.0.0.1 at a free port, with development login/consent pages.

Its signing keys are made here, so tests can also mint ID tokens the IdP "could have" signed
(mix-up, nonce and expiry attacks through a token-endpoint proxy). Clients are registered per test
(:meth:`Idp.register`), since an app's callback URL is known only once it has a port.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

HERE = Path(__file__).resolve().parent
START_TIMEOUT_S = 30.0


@dataclass
class Idp:
    """A running oidc-provider: its issuer URL and private signing key."""

    issuer: str
    kid: str
    private_key: rsa.RSAPrivateKey
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def register(self, clients: Sequence[Mapping[str, Any]]) -> None:
        """Add or replace clients (oidc-provider client metadata)."""
        request = urllib.request.Request(
            self.issuer + "/__test/clients",
            data=json.dumps(list(clients)).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 204

    def sign(self, claims: Mapping[str, Any], headers: Mapping[str, Any] | None = None) -> str:
        """A token signed with the IdP's own key (what the IdP itself could issue)."""
        return jwt.encode(
            dict(claims),
            self.private_key,
            algorithm="RS256",
            headers={"kid": self.kid, **(headers or {})},
        )


def node_ready() -> str | None:
    """Why the IdP cannot run here, or ``None`` when Node and the npm packages are installed."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        return "oidc-provider is not installed: run `npm ci --prefix tests/oidc`"
    return None


def require_node() -> None:
    """Skip (fail in CI) when the IdP cannot run."""
    reason = node_ready()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the OAuth suite must run in CI: {reason}")
    pytest.skip(reason)


@contextmanager
def run_idp(clients: Sequence[Mapping[str, Any]] = ()) -> Iterator[Idp]:
    """Start oidc-provider on 127.0.0.1 until the block ends."""
    require_node()
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(private_key, as_dict=True)
    kid = "idp-" + secrets.token_hex(4)
    jwk.update(kid=kid, use="sig", alg="RS256")
    config = {
        "jwks": {"keys": [jwk]},
        "clients": list(clients),
        "cookieKeys": [secrets.token_hex(16)],
    }
    env = {**os.environ, "IDP_CONFIG": json.dumps(config)}
    process = subprocess.Popen(
        ["node", str(HERE / "idp.js")],
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    first: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if line.startswith("{") and not first:
                first.append(line)
                ready.set()
        ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not ready.wait(START_TIMEOUT_S) or not first:
            pytest.fail("the IdP did not start:\n" + "".join(output[-40:]))
        issuer = json.loads(first[0])["issuer"]
        deadline = time.monotonic() + 10
        while True:  # the port answers as soon as the line is printed; check discovery anyway
            try:
                with urllib.request.urlopen(
                    issuer + "/.well-known/openid-configuration", timeout=2
                ):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield Idp(issuer, kid, private_key, process, output)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        reader.join(timeout=10)  # it reads to the end of the output, then the pipe can close
        assert process.stdout is not None
        process.stdout.close()
