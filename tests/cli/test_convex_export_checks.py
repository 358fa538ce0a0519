"""``authbridge import convex`` on exports that are not quite right: malformed lines stop the
import with the line named (nothing written), rows that cannot be imported are skipped with a
reason, and a zipped export folder is found one level down."""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from authbridge import Auth, AuthConfig, PasswordConfig
from authbridge.cli import main
from authbridge.convex_import import import_convex_export
from authbridge.store.imports import CHUNK

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""What the export holds decides these, not the backend (test_import_convex.py runs both)."""

FAST = PasswordConfig(argon2_memory_kib=1024, argon2_time_cost=1)
CREATED = 1_717_000_000_000.5


def _lines(docs: list[Any]) -> str:
    return "".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in docs)


def export(
    path: Path, users: list[Any], accounts: list[Any] | None = None, folder: str = ""
) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(folder + "users/documents.jsonl", _lines(users))
        if accounts is not None:
            archive.writestr(folder + "authAccounts/documents.jsonl", _lines(accounts))
    return str(path)


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["import", "convex", *args, "--json"]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


@pytest.fixture
def upgraded(cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    return cli_env


@pytest.mark.parametrize(
    ("users", "problem"),
    [
        (["{not json"], "users/documents.jsonl:1: not JSON"),
        ([{"_id": "k1"}, '["a", "list"]'], "users/documents.jsonl:2: not a document with an _id"),
        ([{"_id": 42}], "users/documents.jsonl:1: not a document with an _id"),
        (["x" * (1024 * 1024 + 1)], "users/documents.jsonl:1: line longer than 1048576 bytes"),
    ],
    ids=["not-json", "not-an-object", "numeric-id", "long-line"],
)
def test_a_malformed_line_stops_the_import_and_is_named(
    upgraded: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    users: list[Any],
    problem: str,
) -> None:
    path = export(tmp_path / "export.zip", users)
    assert main(["import", "convex", path]) == 1
    assert problem in capsys.readouterr().err
    # Nothing was written: the valid document before the bad line is new to a fixed export.
    report = _json(capsys, export(tmp_path / "fixed.zip", [{"_id": "k1"}]))
    assert report["users"] == {"created": 1, "existing": 0}


def test_rows_that_cannot_be_imported_are_skipped_with_a_reason(
    upgraded: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    users = [
        {"_id": "k-ada", "_creationTime": CREATED, "email": "ada@example.com"},
        "",  # blank lines (a trailing newline, say) are not documents
        {"_id": "k-bob", "_creationTime": "yesterday", "email": "bob@example.com"},
    ]
    accounts = [
        {"_id": "a-noprov", "userId": "k-ada", "providerAccountId": "1"},
        {"_id": "a-nosub", "userId": "k-ada", "provider": "github"},
        {
            "_id": "a-longsub",
            "userId": "k-ada",
            "provider": "github",
            "providerAccountId": "9" * 321,
        },
        {
            "_id": "a-bademail",
            "userId": "k-bob",
            "provider": "password",
            "providerAccountId": "bob",
        },
        {"_id": "a-gh1", "userId": "k-ada", "provider": "github", "providerAccountId": "77"},
        {"_id": "a-gh2", "userId": "k-bob", "provider": "github", "providerAccountId": "77"},
        {"_id": "a-orphan", "userId": 5, "provider": "github", "providerAccountId": "78"},
    ]
    path = export(tmp_path / "export.zip", users, accounts, folder="snapshot/")
    report = _json(capsys, path)
    assert report["users"] == {"created": 2, "existing": 0}
    assert report["accounts"] == {"created": 1, "existing": 0}
    assert {(s["convexId"], s["reason"]) for s in report["skipped"]} == {
        ("a-noprov", "no usable provider"),
        ("a-nosub", "no usable providerAccountId"),
        ("a-longsub", "no usable providerAccountId"),
        ("a-bademail", "invalid email"),
        ("a-gh2", "repeated in the export"),
        ("a-orphan", "its user was not imported"),
    }


def test_a_sign_in_method_that_exists_already_is_not_imported_again(
    upgraded: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = export(
        tmp_path / "first.zip",
        [{"_id": "k-1"}],
        [{"_id": "a-1", "userId": "k-1", "provider": "github", "providerAccountId": "500"}],
    )
    assert _json(capsys, first)["accounts"]["created"] == 1
    # Another export (another deployment) with the same GitHub identity under other ids.
    second = export(
        tmp_path / "second.zip",
        [{"_id": "k-2"}],
        [{"_id": "a-2", "userId": "k-2", "provider": "github", "providerAccountId": "500"}],
    )
    report = _json(capsys, second)
    assert report["users"]["created"] == 1
    assert report["skipped"] == [
        {"table": "authAccounts", "convexId": "a-2", "reason": "the sign-in method exists already"}
    ]


def test_what_exists_already_is_found_past_the_first_chunk_of_lookups(
    upgraded: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    count = 2 * CHUNK + 1  # every lookup reads in three chunks, the last of one value
    users = [{"_id": f"k-{n}", "email": f"user{n}@example.com"} for n in range(count)]
    accounts = [
        {"_id": f"a-{n}", "userId": f"k-{n}", "provider": "github", "providerAccountId": str(n)}
        for n in range(count)
    ]
    first = export(tmp_path / "first.zip", users, accounts)
    assert _json(capsys, first)["users"] == {"created": count, "existing": 0}
    again = _json(capsys, first)
    assert (again["users"], again["accounts"]) == (
        {"created": 0, "existing": count},
        {"created": 0, "existing": count},
    )
    # Another deployment's export: the same emails and GitHub identities under other ids.
    other_users = [{"_id": f"o-{n}", "email": f"user{n}@example.com"} for n in range(count)]
    other_accounts = [
        {"_id": f"b-{n}", "userId": "o-new", "provider": "github", "providerAccountId": str(n)}
        for n in range(count)
    ]
    other = export(tmp_path / "other.zip", [*other_users, {"_id": "o-new"}], other_accounts)
    report = _json(capsys, other)
    assert report["users"] == {"created": 1, "existing": 0}
    assert report["accounts"] == {"created": 0, "existing": 0}
    assert Counter(s["reason"] for s in report["skipped"]) == {
        "email belongs to an existing user": count,
        "the sign-in method exists already": count,
    }


def test_folders_starting_with_an_underscore_and_deeper_paths_are_not_tables(
    upgraded: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("users/documents.jsonl", _lines([{"_id": "k-real"}]))
        archive.writestr("_system/users/documents.jsonl", _lines(["not json"]))
        archive.writestr("snapshot/_tables/documents.jsonl", _lines(["not json"]))
        archive.writestr("a/b/users/documents.jsonl", _lines(["not json"]))
    report = _json(capsys, str(path))
    assert report["users"] == {"created": 1, "existing": 0}


def test_a_dry_run_reports_its_progress_once_at_the_end(
    upgraded: dict[str, str], tmp_path: Path
) -> None:
    path = export(
        tmp_path / "export.zip",
        [{"_id": "k-1"}, {"_id": "k-2"}],
        [{"_id": "a-1", "userId": "k-1", "provider": "github", "providerAccountId": "1"}],
    )
    calls: list[tuple[int, int]] = []
    config = AuthConfig.from_env(upgraded, password=FAST)

    async def run() -> int:
        async with Auth(config) as auth:
            report = await import_convex_export(
                auth.store,
                Path(path),
                now=datetime(2030, 1, 1, tzinfo=timezone.utc),
                dry_run=True,
                progress=lambda done, total: calls.append((done, total)),
            )
            return report.users_created

    assert asyncio.run(run()) == 2
    assert calls == [(3, 3)]
