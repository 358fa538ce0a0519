"""Import users and accounts from a Convex snapshot export (``authbridge import convex``).

A snapshot export (``npx convex export --path snapshot.zip``, or the dashboard's backup download)
is a ZIP holding one folder per table with the documents as JSON lines::

    users/documents.jsonl          {"_id": "...", "_creationTime": 1.7e12, "email": ..., ...}
    authAccounts/documents.jsonl   {"_id": ..., "userId": ..., "provider": "password",
                                    "providerAccountId": "ada@example.com", "secret": "<scrypt>"}

Only ``users`` and ``authAccounts`` are read (Convex Auth's ``authTables``); every other table is
left alone. Each imported row keeps its Convex ``_id`` in ``convex_id``, which makes the import
idempotent (a row already imported is skipped) and lets the app map its own Convex foreign keys.
Password hashes (Convex Auth's Lucia scrypt, ``<32-hex salt>:<128-hex key>``) are stored as they
are; ``authbridge import convex`` then wraps them in argon2id (as ``authbridge passwords
wrap-imported`` does), so checking an imported account costs what checking any other does. The
password provider verifies both forms and upgrades them to plain argon2id at the next sign-in.

Nothing is half-written: rows are written in batches, each its own transaction, and re-running the
import after a failure picks up where it stopped.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import InvalidEmail
from .providers import normalize_email
from .store import Store, new_id
from .store.imports import ImportRepository

__all__ = ["ConvexExportError", "ImportReport", "Skipped", "import_convex_export"]

_LUCIA_SCRYPT = re.compile(r"^[0-9a-fA-F]{32}:[0-9a-fA-F]{128}$")
"""The hash format Convex Auth's Password provider stores (what the password hasher verifies)."""
_MAX_LINE = 1024 * 1024
_BATCH = 500


class ConvexExportError(ValueError):
    """The file is not a Convex snapshot export with a ``users`` table."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A row that was not imported, and why."""

    table: str
    """``users`` or ``authAccounts``."""
    convex_id: str
    reason: str


@dataclass(slots=True)
class ImportReport:
    """What an import did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    users_created: int = 0
    users_existing: int = 0
    """Imported before (same Convex id): left as they are."""
    accounts_created: int = 0
    accounts_existing: int = 0
    passwords_imported: int = 0
    """Password accounts whose hash was kept, so their users sign in with their old password."""
    skipped: list[Skipped] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON object (``--json``)."""
        return {
            "dryRun": self.dry_run,
            "users": {"created": self.users_created, "existing": self.users_existing},
            "accounts": {"created": self.accounts_created, "existing": self.accounts_existing},
            "passwordsImported": self.passwords_imported,
            "skipped": [
                {"table": s.table, "convexId": s.convex_id, "reason": s.reason}
                for s in self.skipped
            ],
        }


def _tables(archive: zipfile.ZipFile) -> dict[str, str]:
    """``table name -> member path`` of every ``<table>/documents.jsonl`` at the top level (or
    under one enclosing folder, as when a directory export was zipped by hand)."""
    found: dict[str, str] = {}
    for name in archive.namelist():
        parts = name.split("/")
        if parts[-1] != "documents.jsonl" or parts[0].startswith("_"):
            continue
        if len(parts) == 2 or (len(parts) == 3 and not parts[1].startswith("_")):
            found.setdefault(parts[-2], name)
    return found


def _documents(archive: zipfile.ZipFile, member: str) -> Iterator[dict[str, Any]]:
    with archive.open(member) as stream:
        for number, raw in enumerate(stream, 1):
            if len(raw) > _MAX_LINE:
                raise ConvexExportError(f"{member}:{number}: line longer than {_MAX_LINE} bytes")
            line = raw.strip()
            if not line:
                continue
            try:
                doc = json.loads(line)
            except ValueError as exc:
                raise ConvexExportError(f"{member}:{number}: not JSON") from exc
            if not isinstance(doc, dict) or not isinstance(doc.get("_id"), str):
                raise ConvexExportError(f"{member}:{number}: not a document with an _id")
            yield doc


def read_export(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``users`` and ``authAccounts`` documents of a snapshot export.

    Raises:
        ConvexExportError: not a ZIP, no ``users`` table, or a malformed document.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ConvexExportError(f"{path}: not a readable ZIP file ({exc})") from exc
    with archive:
        tables = _tables(archive)
        if "users" not in tables:
            raise ConvexExportError(
                f"{path}: no users/documents.jsonl (is it a Convex snapshot export?)"
            )
        users = list(_documents(archive, tables["users"]))
        accounts = (
            list(_documents(archive, tables["authAccounts"])) if "authAccounts" in tables else []
        )
    return users, accounts


def _when(value: Any, fallback: datetime) -> datetime:
    """A Convex timestamp (milliseconds since the epoch, a float) as a UTC datetime."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 2.5e14:
        return datetime.fromtimestamp(value / 1000, timezone.utc)
    return fallback


def _text(doc: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = doc.get(name)
    return value[:limit] if isinstance(value, str) and value else None


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


async def import_convex_export(
    store: Store,
    path: Path,
    *,
    now: datetime,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Create users and accounts from a Convex snapshot export.

    Args:
        store: the auth tables to write to (created, and migrated to include ``convex_id``).
        now: the time for rows without a ``_creationTime``.
        dry_run: plan everything, write nothing.
        progress: called with ``(rows done, rows in total)`` as the import goes.

    Raises:
        ConvexExportError: the file is not a usable export.
        StoreUnavailable: the database failed (what was committed stays; re-run to finish).
    """
    users, accounts = read_export(path)
    report = ImportReport(dry_run=dry_run)
    repo = ImportRepository(store)
    total = len(users) + len(accounts)

    # What is there already: imported users and accounts (by Convex id), taken emails and
    # (provider, account) pairs.
    known_users = await repo.imported_users(u["_id"] for u in users)
    known_accounts = await repo.imported_accounts(a["_id"] for a in accounts)

    user_rows: list[dict[str, Any]] = []
    user_ids: dict[str, str] = dict(known_users)
    emails_in_export: set[str] = set()
    candidate_emails: dict[str, str] = {}
    for doc in users:
        convex_id = doc["_id"]
        if convex_id in known_users:
            report.users_existing += 1
            continue
        email: str | None = None
        raw_email = doc.get("email")
        if isinstance(raw_email, str) and raw_email:
            try:
                email = normalize_email(raw_email)
            except InvalidEmail:
                report.skipped.append(Skipped("users", convex_id, "invalid email"))
                continue
            if email in emails_in_export:
                report.skipped.append(Skipped("users", convex_id, "email repeated in the export"))
                continue
            emails_in_export.add(email)
            candidate_emails[email] = convex_id
        user_id = new_id()
        user_ids[convex_id] = user_id
        user_rows.append(
            {
                "id": user_id,
                "convex_id": convex_id,
                "created_at": _when(doc.get("_creationTime"), now),
                "email": email,
                "email_verified_at": _when(doc["emailVerificationTime"], now)
                if doc.get("emailVerificationTime") is not None
                else None,
                "name": _text(doc, "name", 200),
                "image": _text(doc, "image", 10_000),
                "phone": _text(doc, "phone", 40),
                "phone_verified_at": _when(doc["phoneVerificationTime"], now)
                if doc.get("phoneVerificationTime") is not None
                else None,
                "is_anonymous": doc.get("isAnonymous") is True,
            }
        )

    # Emails that belong to users who were not imported from Convex: never merged silently.
    taken = await repo.taken_emails(candidate_emails)
    if taken:
        dropped = {candidate_emails[e] for e in taken}
        for convex_id in sorted(dropped):
            report.skipped.append(Skipped("users", convex_id, "email belongs to an existing user"))
            del user_ids[convex_id]
        user_rows = [r for r in user_rows if r["convex_id"] not in dropped]

    account_rows: list[dict[str, Any]] = []
    pairs: set[tuple[str, str]] = set()
    for doc in accounts:
        convex_id = doc["_id"]
        if convex_id in known_accounts:
            report.accounts_existing += 1
            continue
        provider, subject = doc.get("provider"), doc.get("providerAccountId")
        owner = doc.get("userId")
        owner_id = user_ids.get(owner) if isinstance(owner, str) else None
        if owner_id is None:
            report.skipped.append(Skipped("authAccounts", convex_id, "its user was not imported"))
            continue
        if not isinstance(provider, str) or not provider or len(provider) > 64:
            report.skipped.append(Skipped("authAccounts", convex_id, "no usable provider"))
            continue
        if not isinstance(subject, str) or not subject or len(subject) > 320:
            report.skipped.append(Skipped("authAccounts", convex_id, "no usable providerAccountId"))
            continue
        if provider == "password":
            # Our password provider looks accounts up by the normalised email.
            try:
                subject = normalize_email(subject)
            except InvalidEmail:
                report.skipped.append(Skipped("authAccounts", convex_id, "invalid email"))
                continue
        if (provider, subject) in pairs:
            report.skipped.append(Skipped("authAccounts", convex_id, "repeated in the export"))
            continue
        pairs.add((provider, subject))
        secret = doc.get("secret")
        stored: str | None = None
        if isinstance(secret, str) and secret:
            if _LUCIA_SCRYPT.match(secret):
                stored = secret
            else:
                report.skipped.append(
                    Skipped("authAccounts", convex_id, "password hash format unknown: not kept")
                )
        account_rows.append(
            {
                "id": new_id(),
                "convex_id": convex_id,
                "created_at": _when(doc.get("_creationTime"), now),
                "user_id": owner_id,
                "provider": provider,
                "provider_account_id": subject,
                "secret": stored,
            }
        )

    clashing = await repo.taken_identities(r["provider_account_id"] for r in account_rows)
    kept_accounts = []
    for row in account_rows:
        if (row["provider"], row["provider_account_id"]) in clashing:
            report.skipped.append(
                Skipped("authAccounts", row["convex_id"], "the sign-in method exists already")
            )
        else:
            kept_accounts.append(row)

    report.users_created = len(user_rows)
    report.accounts_created = len(kept_accounts)
    report.passwords_imported = sum(1 for r in kept_accounts if r["secret"] is not None)
    if dry_run:
        if progress is not None:
            progress(total, total)
        return report

    done = report.users_existing + report.accounts_existing
    for chunk in _chunks(user_rows):
        await repo.insert_users(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    for chunk in _chunks(kept_accounts):
        await repo.insert_accounts(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    if progress is not None:
        progress(total, total)
    return report
