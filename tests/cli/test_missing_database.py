"""A database that is not there (no such PostgreSQL database, no directory for the SQLite file) or
cannot be reached is named as such: one ``DatabaseMissing`` or ``DatabaseUnreachable`` error line
with the URL's password hidden, exit status 1, and never the advice to run ``authbridge db
upgrade`` on a database that the upgrade cannot reach either."""

from __future__ import annotations

import json
import secrets
import zipfile
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from authbridge.cli import main
from tests.toolkit.databases import pg_database_url, require_postgres, sqlite_url
from tests.toolkit.servers import free_port

from .conftest import DB_PASSWORD, run_cli

FIX = "; create it, then run `authbridge db upgrade`"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that does not exist, of every backend (overrides conftest's empty one)."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "no-such-directory", "auth")
    require_postgres()  # the server must be there to say that the database is not
    return pg_database_url(f"authbridge_missing_{secrets.token_hex(4)}", password=DB_PASSWORD)


def _expected(url: str) -> str:
    parsed = make_url(url)
    redacted = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        what = f"the directory {Path(parsed.database).parent} of the SQLite database"
    else:
        what = f'database "{parsed.database}"'
    return f"authbridge: error: DatabaseMissing: {what} does not exist ({redacted}){FIX}"


def _errors(err: str, *, only: bool = True) -> list[str]:
    """The command's own error lines. ``only``: they are all it wrote (a missing or unreachable
    database is looked at before the engine opens, so the engine logs nothing of it)."""
    assert "Traceback" not in err
    assert "are the tables" not in err
    lines = err.splitlines()
    if only:
        assert all(line.startswith("authbridge: error: ") for line in lines), lines
    return [line for line in lines if line.startswith("authbridge: error: ")]


def _convex_export(path: Path) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("users/documents.jsonl", json.dumps({"_id": "k17ada"}) + "\n")
    return str(path)


@pytest.mark.parametrize(
    "args",
    [
        ["db", "upgrade"],
        ["db", "upgrade", "--json"],
        ["db", "init"],
        ["db", "current"],
        ["cleanup"],
        ["passwords", "wrap-imported"],
        ["sessions", "list", "--email", "ada@example.com"],
        ["sessions", "revoke", "some-session"],
        ["sessions", "revoke-user", "some-user"],
        ["import", "convex", "EXPORT"],
    ],
    ids=lambda args: " ".join(args),
)
def test_a_database_that_is_not_there_is_named_and_nothing_else_is_said(
    cli_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    url = cli_env["AUTHBRIDGE_DATABASE_URL"]
    args = [_convex_export(tmp_path / "export.zip") if a == "EXPORT" else a for a in args]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert _errors(captured.err) == [_expected(url)]
    assert DB_PASSWORD not in captured.err
    assert not (tmp_path / "no-such-directory").exists()


def test_a_database_that_is_not_there_is_one_line_from_the_process(
    cli_env: dict[str, str],
) -> None:
    done = run_cli(["-v", "db", "upgrade"], cli_env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert _errors(done.stderr) == [_expected(cli_env["AUTHBRIDGE_DATABASE_URL"])]
    assert DB_PASSWORD not in done.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_server_that_refuses_connections_is_unreachable(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv(
        "AUTHBRIDGE_DATABASE_URL", f"postgresql+asyncpg://app:{DB_PASSWORD}@127.0.0.1:{port}/app"
    )
    assert main(["db", "upgrade"]) == 1
    err = capsys.readouterr().err
    [line] = _errors(err)
    assert line.startswith(
        "authbridge: error: DatabaseUnreachable: cannot reach "
        f"postgresql+asyncpg://app:***@127.0.0.1:{port}/app: ConnectionRefusedError: "
    )
    assert DB_PASSWORD not in err
    assert "db upgrade" not in err


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sqlite_path_that_cannot_be_opened_is_unreachable_not_missing(
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    taken = tmp_path / "a-directory.db"
    taken.mkdir()  # its directory exists; the path itself is no file SQLite can open
    url = sqlite_url(tmp_path, "a-directory")
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", url)
    assert main(["cleanup"]) == 1
    assert _errors(capsys.readouterr().err) == [
        f"authbridge: error: DatabaseUnreachable: cannot reach {url}: "
        "OperationalError: unable to open database file"
    ]


@pytest.mark.pg
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_role_the_server_does_not_know_is_unreachable_not_a_missing_table(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # 'role "..." does not exist' once passed for a missing table, with the advice to upgrade.
    require_postgres()
    role = f"nobody_{secrets.token_hex(4)}"
    url = pg_database_url("test", password=DB_PASSWORD).replace("postgres:", f"{role}:")
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", url)
    assert main(["cleanup"]) == 1
    err = capsys.readouterr().err
    assert _errors(err) == [
        f"authbridge: error: DatabaseUnreachable: cannot reach "
        f"postgresql+asyncpg://{role}:***@127.0.0.1:5432/test: "
        f'InvalidAuthorizationSpecificationError: role "{role}" does not exist'
    ]
    assert "db upgrade" not in err


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_file_that_is_not_a_sqlite_database_is_neither_missing_nor_missing_tables(
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "notes.db").write_text("these are notes, not a database\n" * 100)
    url = sqlite_url(tmp_path, "notes")
    monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", url)
    assert main(["db", "upgrade"]) == 1
    assert _errors(capsys.readouterr().err, only=False) == [
        f"authbridge: error: database unavailable ({url}): DatabaseError: file is not a database"
    ]
