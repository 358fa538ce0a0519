"""``authbridge import convex``: a Convex-export-shaped ZIP built here is imported, and imported
users sign in with their old passwords (Convex Auth's scrypt hashes, upgraded on first use)."""

from __future__ import annotations

import asyncio
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from authbridge import Auth, AuthConfig, InvalidCredentials
from authbridge.cli import main
from authbridge.passwords import scrypt_hash
from tests.toolkit.engines import FAST_PASSWORDS

ADA_PASSWORD = "ada's old convex password"
CREATED = 1_717_000_000_000.5  # Convex _creationTime: milliseconds, a float


def _doc(convex_id: str, **fields: Any) -> dict[str, Any]:
    return {"_id": convex_id, "_creationTime": CREATED, **fields}


USERS = [
    _doc("k17ada", email="Ada@Example.com", name="Ada", emailVerificationTime=CREATED + 5),
    _doc("k17bob", email="bob@example.com", name="Bob", image="https://img.example/bob.png"),
    _doc("k17anon", isAnonymous=True),
    _doc("k17carol", email="carol@example.com"),  # taken by a user who signed up here
    _doc("k17bad", email="not an email"),
    _doc("k17ada2", email="ada@example.com"),  # Convex does not enforce unique emails
]
ACCOUNTS = [
    _doc(
        "j57ada",
        userId="k17ada",
        provider="password",
        providerAccountId="Ada@Example.com",
        secret=scrypt_hash(ADA_PASSWORD),
    ),
    _doc("j57bobgh", userId="k17bob", provider="github", providerAccountId="5550123"),
    _doc(
        "j57bobpw",
        userId="k17bob",
        provider="password",
        providerAccountId="bob@example.com",
        secret="$2b$10$abcdefghijklmnopqrstuv",  # not Convex's format: kept without the hash
    ),
    _doc("j57carol", userId="k17carol", provider="password", providerAccountId="carol@example.com"),
    _doc("j57ghost", userId="k17deleted", provider="github", providerAccountId="1"),
]


def convex_export(path: Path) -> Path:
    """A snapshot export as ``npx convex export`` writes it: one folder per table, JSON lines."""

    def jsonl(docs: list[dict[str, Any]]) -> str:
        return "".join(json.dumps(d) + "\n" for d in docs)

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("README.md", "This is a Convex snapshot export.")
        archive.writestr("_tables/documents.jsonl", jsonl([{"name": "users", "id": 10001}]))
        archive.writestr("users/documents.jsonl", jsonl(USERS))
        archive.writestr("users/generated_schema.jsonl", '"any"\n')
        archive.writestr("authAccounts/documents.jsonl", jsonl(ACCOUNTS))
        archive.writestr("authSessions/documents.jsonl", jsonl([_doc("s1", userId="k17ada")]))
        archive.writestr("notes/documents.jsonl", jsonl([_doc("n1", author="k17ada")]))
    return path


def _run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["import", "convex", *args, "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def _prepare(cli_env: dict[str, str]) -> AuthConfig:
    assert main(["db", "upgrade"]) == 0
    config = AuthConfig.from_env(cli_env, password=FAST_PASSWORDS)

    async def carol() -> None:
        async with Auth(config) as auth:
            await auth.sign_up_with_password("carol@example.com", "carol's password here")

    asyncio.run(carol())
    return config


def _fresh(cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> AuthConfig:
    config = _prepare(cli_env)
    capsys.readouterr()
    return config


def test_an_import_creates_users_and_accounts_and_old_passwords_sign_in(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _fresh(cli_env, capsys)
    report = _run_json(capsys, str(convex_export(tmp_path / "snapshot.zip")))
    assert report["users"] == {"created": 3, "existing": 0}
    assert report["accounts"] == {"created": 3, "existing": 0}
    assert report["passwordsImported"] == 1
    assert report["passwordsWrapped"] == 1  # imported accounts cost what others do to check
    assert {(s["convexId"], s["reason"]) for s in report["skipped"]} == {
        ("k17carol", "email belongs to an existing user"),
        ("k17bad", "invalid email"),
        ("k17ada2", "email repeated in the export"),
        ("j57bobpw", "password hash format unknown: not kept"),
        ("j57carol", "its user was not imported"),
        ("j57ghost", "its user was not imported"),
    }

    async def check() -> None:
        async with Auth(config) as auth:
            t = auth.store.tables
            async with auth.store.read() as conn:
                users = {r.convex_id: r for r in await conn.execute(select(t.users))}
                accounts = {r.convex_id: r for r in await conn.execute(select(t.accounts))}
            ada = users["k17ada"]
            assert (ada.email, ada.name) == ("ada@example.com", "Ada")
            assert ada.email_verified_at is not None and ada.created_at.year == 2024
            assert users["k17anon"].is_anonymous is True
            assert accounts["j57bobgh"].user_id == users["k17bob"].id
            assert accounts["j57bobpw"].secret is None
            assert accounts["j57ada"].secret.startswith("scrypt-argon2id:")

            signed_in = await auth.sign_in_with_password("ADA@example.com", ADA_PASSWORD)
            assert signed_in.user_id == ada.id
            with pytest.raises(InvalidCredentials):
                await auth.sign_in_with_password("ada@example.com", "not the old password")
            async with auth.store.read() as conn:
                secret = (
                    await conn.execute(
                        select(t.accounts.c.secret).where(t.accounts.c.convex_id == "j57ada")
                    )
                ).scalar_one()
            assert secret.startswith("$argon2id$")  # upgraded at the first sign-in

    asyncio.run(check())


def test_importing_twice_changes_nothing_the_second_time(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fresh(cli_env, capsys)
    export = str(convex_export(tmp_path / "snapshot.zip"))
    _run_json(capsys, export)
    again = _run_json(capsys, export)
    assert again["users"] == {"created": 0, "existing": 3}
    assert again["accounts"] == {"created": 0, "existing": 3}


def test_a_dry_run_reports_and_writes_nothing(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _fresh(cli_env, capsys)
    export = str(convex_export(tmp_path / "snapshot.zip"))
    planned = _run_json(capsys, export, "--dry-run")
    assert planned["dryRun"] is True
    assert planned["users"]["created"] == 3 and planned["accounts"]["created"] == 3

    async def count() -> int:
        async with Auth(config) as auth, auth.store.read() as conn:
            return len((await conn.execute(select(auth.store.tables.users))).all())

    assert asyncio.run(count()) == 1  # only Carol, who signed up here
    assert main(["import", "convex", export]) == 0
    out = capsys.readouterr().out
    assert "imported 3 user(s) and 3 account(s) (1 with their password)" in out
    assert "skipped users k17bad: invalid email" in out


def test_a_file_that_is_not_an_export_is_a_clear_error(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    not_zip = tmp_path / "users.json"
    not_zip.write_text("[]")
    assert main(["import", "convex", str(not_zip)]) == 1
    assert "not a readable ZIP file" in capsys.readouterr().err
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("notes/documents.jsonl", "")
    assert main(["import", "convex", str(empty)]) == 1
    assert "no users/documents.jsonl" in capsys.readouterr().err
