"""How the ``authbridge`` command fails: every mistake is one ``authbridge: error:`` line (never a
traceback) and exit status 2 for a usage or configuration error, 1 for a failure."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import pty
import select
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from authbridge import Auth, AuthConfig, PasswordConfig
from authbridge.cli import main
from authbridge.passwords import scrypt_hash
from authbridge.store import new_id

from .conftest import CLI_TIMEOUT

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""Failures do not depend on the backend (the PostgreSQL paths run in test_cli.py)."""

FAST = PasswordConfig(argon2_memory_kib=1024, argon2_time_cost=1)


def _error_lines(err: str) -> list[str]:
    lines = [line for line in err.splitlines() if line.startswith("authbridge: error: ")]
    assert "Traceback" not in err
    return lines


def test_a_batch_size_that_is_not_a_number_is_a_usage_error(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["cleanup", "--batch-size", "ten"])
    assert exited.value.code == 2
    assert "'ten' is not a whole number" in capsys.readouterr().err


def test_arguments_after_a_double_dash_are_taken_as_given(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["sessions", "list", "--json", "--", "-AbCdEfGhIjKlMnOpQrStUv"]) == 0
    assert json.loads(capsys.readouterr().out)["userId"] == "-AbCdEfGhIjKlMnOpQrStUv"


def test_rotating_with_an_invalid_configuration_names_the_variable(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTHBRIDGE_JWT_DURATION", "forever")
    assert main(["keys", "generate", "--rotate"]) == 2
    assert _error_lines(capsys.readouterr().err) == [
        "authbridge: error: AUTHBRIDGE_JWT_DURATION: 'forever' is not a duration "
        "(use whole seconds or 10s, 15m, 1h, 30d)"
    ]


def test_rotating_jwk_keys_is_refused_because_the_line_holds_pem_keys(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()))
    monkeypatch.setenv("AUTHBRIDGE_JWT_PRIVATE_KEYS", jwk)
    assert main(["keys", "generate", "--rotate"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--rotate needs PEM keys" in captured.err


def test_a_server_database_without_keys_is_a_configuration_error(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on port 1: the check must come before any connection.
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", "postgresql://app@127.0.0.1:1/app")
    monkeypatch.delenv("AUTHBRIDGE_JWT_PRIVATE_KEYS")
    assert main(["sessions", "revoke", "some-session"]) == 2
    [line] = _error_lines(capsys.readouterr().err)
    assert "AUTHBRIDGE_JWT_PRIVATE_KEYS is required with a server database" in line


def test_a_synchronous_driver_is_reported_as_a_database_error(
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", f"sqlite+pysqlite:///{tmp_path}/sync.db")
    assert main(["cleanup"]) == 1
    [line] = _error_lines(capsys.readouterr().err)
    assert line.startswith("authbridge: error: database error (sqlite+pysqlite:///")
    assert "requires an async driver" in line


def test_an_unknown_revision_is_a_usage_error_in_one_line_without_a_traceback(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # The same status as the --sql form: the command was asked for something that is not there.
    assert main(["db", "upgrade", "--revision", "no-such-revision"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    [line] = _error_lines(captured.err)
    assert line == "authbridge: error: Can't locate revision identified by 'no-such-revision'"


def test_an_unknown_revision_for_the_sql_script_is_a_usage_error(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--sql", "--from", "no-such-revision"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = _error_lines(captured.err)
    assert "Can't locate revision identified by 'no-such-revision'" in line


def test_a_starting_revision_without_sql_is_a_usage_error(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["db", "upgrade", "--from", "0003"])
    assert exited.value.code == 2
    assert "--from goes with --sql" in capsys.readouterr().err


def test_a_missing_extra_is_named_with_its_pip_command(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec

    def without_httpx(name: str, *args: Any) -> Any:
        return None if name == "httpx" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_httpx)
    monkeypatch.setenv("AUTHBRIDGE_OAUTH_GITHUB_CLIENT_ID", "client")
    assert main(["cleanup"]) == 1
    [line] = _error_lines(capsys.readouterr().err)
    assert "pip install 'authbridge[oauth]'" in line


@pytest.mark.parametrize("command", ["list", "revoke-user"])
def test_a_user_selected_by_an_invalid_or_unknown_email_is_an_error(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], command: str
) -> None:
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["sessions", command, "--email", "not-an-email"]) == 1
    assert _error_lines(capsys.readouterr().err) == [
        "authbridge: error: 'not-an-email' is not an email address"
    ]
    assert main(["sessions", command, "--email", "Nobody@Example.com"]) == 1
    assert _error_lines(capsys.readouterr().err) == [
        "authbridge: error: no user with email nobody@example.com"
    ]


def test_wrap_imported_leaves_secrets_that_are_not_scrypt_hashes_alone(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    config = AuthConfig.from_env(cli_env, password=FAST)
    odd = "not-a-scrypt-hash"

    async def seed() -> None:
        async with Auth(config) as auth:
            t = auth.store.tables
            async with auth.store.transaction() as conn:
                for n, secret in enumerate((odd, scrypt_hash("old password one"))):
                    user_id = new_id()
                    await conn.execute(t.users.insert().values(id=user_id, created_at=auth.clock()))
                    await conn.execute(
                        t.accounts.insert().values(
                            id=new_id(),
                            created_at=auth.clock(),
                            user_id=user_id,
                            provider="password",
                            provider_account_id=f"user{n}@example.com",
                            secret=secret,
                        )
                    )

    async def secrets() -> set[str]:
        async with Auth(config) as auth, auth.store.read() as conn:
            return {r.secret for r in await conn.execute(auth.store.tables.accounts.select())}

    asyncio.run(seed())
    capsys.readouterr()
    # Batches of one: the odd secret must not be fetched again and again.
    assert main(["passwords", "wrap-imported", "--batch-size", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"wrapped": 1}
    stored = asyncio.run(secrets())
    assert odd in stored
    assert sum(s.startswith("scrypt-argon2id:") for s in stored) == 1


def test_importing_into_tables_without_the_convex_column_asks_for_an_upgrade(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = _export(tmp_path / "export.zip", users=1)
    assert main(["import", "convex", str(export)]) == 1
    assert _error_lines(capsys.readouterr().err) == [
        "authbridge: error: the auth tables lack the convex_id column: "
        "run `authbridge db upgrade` first"
    ]


def _export(path: Path, users: int) -> Path:
    """A minimal Convex snapshot export: ``users`` users, each with a GitHub account."""
    created = 1_717_000_000_000.5
    user_docs = [
        {"_id": f"k17user{n}", "_creationTime": created, "email": f"user{n}@example.com"}
        for n in range(users)
    ]
    account_docs = [
        {
            "_id": f"j57acct{n}",
            "_creationTime": created,
            "userId": f"k17user{n}",
            "provider": "github",
            "providerAccountId": str(1000 + n),
        }
        for n in range(users)
    ]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("users/documents.jsonl", "".join(json.dumps(d) + "\n" for d in user_docs))
        archive.writestr(
            "authAccounts/documents.jsonl", "".join(json.dumps(d) + "\n" for d in account_docs)
        )
    return path


def test_an_import_on_a_terminal_shows_progress_and_a_pipe_does_not(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    export = _export(tmp_path / "export.zip", users=3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")}
    env.update(cli_env)
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "authbridge.cli", "import", "convex", str(export)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=secondary,
            text=True,
        )
        os.close(secondary)
        terminal = b""
        deadline = time.monotonic() + CLI_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            terminal += chunk
        stdout, _ = process.communicate(timeout=CLI_TIMEOUT)
    finally:
        os.close(primary)
    assert process.returncode == 0, terminal
    assert "imported 3 user(s) and 3 account(s)" in stdout
    shown = terminal.decode()
    assert "6/6 rows" in shown and "s left" in shown
    # Piped (as in CI logs), the same import prints no progress.
    capsys.readouterr()
    assert main(["import", "convex", str(export)]) == 0
    captured = capsys.readouterr()
    assert "already imported: 3 user(s), 3 account(s)" in captured.out
    assert "rows" not in captured.err
