"""The ``authbridge`` command: keys, database schema, sessions administration and cleanup.

::

    authbridge keys generate [--algorithm ES256|RS256|EdDSA] [--rotate] [--json]
    authbridge db init | db upgrade [--revision REV] | db current   [--json]
    authbridge db upgrade --sql [--from REV] [--revision REV]    (prints the SQL; no connection)
    authbridge cleanup [--batch-size N] [--json]
    authbridge passwords wrap-imported [--batch-size N] [--json]
    authbridge sessions list (USER_ID | --email EMAIL) [--json]
    authbridge sessions revoke SESSION_ID [--json]
    authbridge sessions revoke-user (USER_ID | --email EMAIL) [--json]
    authbridge import convex EXPORT.zip [--dry-run] [--json]

Settings come from the ``AUTHBRIDGE_*`` environment variables, exactly as the application reads
them (:meth:`AuthConfig.from_env`). The database password never appears in the output or logs.
Long work (cleanup, wrap-imported, import) shows progress on a terminal (count, rate, time left
when the total is known) and stays quiet when stderr is piped or with ``--json``.
Exit status: 0 success, 1 failure (database, not found), 2 usage or configuration error. A
database that is not there or cannot be reached is reported as such, ``DatabaseMissing`` or
``DatabaseUnreachable`` (exit status 1), never with the advice to upgrade it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

from ._extras import MissingExtra
from .config import ALGORITHMS, AuthConfig, split_keys
from .engine import Auth
from .errors import ConfigError, InvalidEmail, StoreUnavailable
from .keys import Algorithm, SigningKey, generate_private_key_pem
from .providers import normalize_email
from .sessions import SessionInfo
from .store import redact_url
from .store.dialect import (
    DATABASE_MISSING,
    ConnectFailure,
    connect_failure,
    server_failure,
    sqlite_file_failure,
)
from .store.schema import (
    DatabaseError,
    current_revision,
    head_revision,
    init_schema,
    upgrade_schema,
    url_password,
)

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

logger = logging.getLogger("authbridge.cli")


class _Output:
    """stdout / stderr with the database password scrubbed from everything written."""

    def __init__(self, secrets: Sequence[str], stdout: TextIO, stderr: TextIO) -> None:
        self._secrets = [s for s in secrets if s]
        self._stdout = stdout
        self._stderr = stderr

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def print(self, text: str = "") -> None:
        print(self.scrub(text), file=self._stdout)

    def error(self, text: str) -> None:
        print(self.scrub(f"authbridge: error: {text}"), file=self._stderr)


class _ScrubbingFormatter(logging.Formatter):
    def __init__(self, output: _Output) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self._output = output

    def format(self, record: logging.LogRecord) -> str:
        return self._output.scrub(super().format(record))


class _Progress:
    """Progress of long work on a terminal: rows done, rate, and time left when the total is
    known. Silent when the stream is not a terminal (piped, cron) or the output is JSON."""

    def __init__(self, stream: TextIO, *, quiet: bool = False) -> None:
        self._stream = stream
        self.enabled = not quiet and stream.isatty()
        self._started = time.monotonic()
        self._shown = False

    def __call__(self, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        rate = done / max(time.monotonic() - self._started, 1e-6)
        line = f"{done}/{total} rows" if total is not None else f"{done} rows"
        line += f", {rate:.0f}/s"
        if total is not None:
            line += f", {(total - done) / rate if rate > 0 else 0.0:.0f} s left"
        print(f"\r{line} ", end="", file=self._stream, flush=True)
        self._shown = True

    def finish(self) -> None:
        """End the progress line (if one was shown)."""
        if self._shown:
            print(file=self._stream)
            self._shown = False


def _progress(args: argparse.Namespace) -> _Progress:
    return _Progress(sys.stderr, quiet=bool(getattr(args, "json", False)))


def _url_secrets(url: str) -> list[str]:
    password = url_password(url)
    return [password, quote_plus(password), quote(password)] if password else []


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authbridge",
        description="authbridge administration. Settings come from AUTHBRIDGE_* variables.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keys = commands.add_parser("keys", help="signing keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    generate = keys.add_parser(
        "generate", help="print a new private key as an AUTHBRIDGE_JWT_PRIVATE_KEYS line"
    )
    generate.add_argument("--algorithm", choices=ALGORITHMS, default=ALGORITHMS[0])
    generate.add_argument(
        "--rotate",
        action="store_true",
        help="keep the keys configured now (they keep verifying); the new key signs",
    )
    _add_json(generate)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    _add_json(db.add_parser("init", help="create the auth tables (and record the revision)"))
    upgrade = db.add_parser("upgrade", help="apply the shipped Alembic migrations")
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    upgrade.add_argument(
        "--sql",
        action="store_true",
        help="print the SQL script instead of running it (offline: nothing connects)",
    )
    upgrade.add_argument(
        "--from",
        dest="start",
        metavar="REV",
        help="with --sql: the revision the database is at (default: an empty database)",
    )
    _add_json(upgrade)
    _add_json(db.add_parser("current", help="show the applied and the newest revision"))

    cleanup = commands.add_parser(
        "cleanup", help="delete expired sessions, tokens, revocations and rate-limit rows"
    )
    cleanup.add_argument("--batch-size", type=_positive_int, default=1000, metavar="N")
    _add_json(cleanup)

    passwords = commands.add_parser("passwords", help="password hashes").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    wrap = passwords.add_parser(
        "wrap-imported",
        help="wrap imported Convex/Lucia scrypt hashes in argon2id (they keep working)",
    )
    wrap.add_argument("--batch-size", type=_positive_int, default=100, metavar="N")
    _add_json(wrap)

    sessions = commands.add_parser("sessions", help="list and revoke sessions").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = sessions.add_parser("list", help="a user's live sessions")
    _add_user_selector(listing)
    _add_json(listing)
    revoke = sessions.add_parser("revoke", help="end one session on every instance")
    revoke.add_argument("session_id", metavar="SESSION_ID")
    _add_json(revoke)
    revoke_user = sessions.add_parser("revoke-user", help="end every session of a user")
    _add_user_selector(revoke_user)
    _add_json(revoke_user)

    sources = commands.add_parser("import", help="import users from another system").add_subparsers(
        dest="action", required=True, metavar="SOURCE"
    )
    convex = sources.add_parser(
        "convex", help="users and accounts of a Convex snapshot export (npx convex export)"
    )
    convex.add_argument("export", metavar="EXPORT.zip", help="the snapshot export ZIP")
    convex.add_argument("--dry-run", action="store_true", help="report what would be imported")
    _add_json(convex)
    return parser


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")


def _add_user_selector(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("user_id", nargs="?", metavar="USER_ID")
    who.add_argument("--email", metavar="EMAIL")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


_ID_WITH_DASH = re.compile(r"^-[A-Za-z0-9_-]{15,63}$")


def _ids_as_positionals(argv: Sequence[str]) -> list[str]:
    """Ids are URL-safe base64 and may start with ``-``; argparse would take them for options.
    Move such arguments behind ``--`` (after every real option)."""
    known = {"-h", "-v", "--help", "--verbose", "--email", "--json", "--algorithm", "--rotate"}
    known |= {"--revision", "--batch-size", "--dry-run", "--sql", "--from"}
    if "--" in argv:
        return list(argv)
    ids = [a for a in argv if _ID_WITH_DASH.match(a) and a.split("=", 1)[0] not in known]
    if not ids:
        return list(argv)
    return [a for a in argv if a not in ids] + ["--", *ids]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``authbridge`` command line; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(_ids_as_positionals(sys.argv[1:] if argv is None else argv))
    if getattr(args, "start", None) is not None and not args.sql:
        parser.error("--from goes with --sql (online, the database knows its revision)")
    if args.command == "keys":
        # Key generation needs no database; --rotate reads the configured keys.
        plain = _Output([], sys.stdout, sys.stderr)
        try:
            config = AuthConfig.from_env() if args.rotate else None
        except ConfigError as exc:
            plain.error(str(exc))
            return EXIT_USAGE
        return _keys_generate(plain, args.algorithm, config, as_json=args.json)

    try:
        config = AuthConfig.from_env()
    except ConfigError as exc:
        # The message names a variable, never echoes a database URL; scrub it anyway.
        _Output([], sys.stdout, sys.stderr).error(str(exc))
        return EXIT_USAGE
    out = _Output(_url_secrets(config.database_url), sys.stdout, sys.stderr)
    command = _COMMANDS[(args.command, getattr(args, "action", None))]
    with _logging_to(out, verbose=args.verbose):
        try:
            if getattr(args, "sql", False):
                return _db_upgrade_sql(config.database_url, out, args)
            return asyncio.run(_with_auth(config, out, lambda auth: command(auth, out, args)))
        except MissingExtra as exc:
            out.error(str(exc))
            return EXIT_FAILURE


@contextlib.contextmanager
def _logging_to(out: _Output, *, verbose: bool) -> Iterator[None]:
    """Log authbridge and Alembic messages to stderr, scrubbed, while a command runs; then put
    the logging configuration back (``main`` may run inside another program)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ScrubbingFormatter(out))
    level = logging.INFO if verbose else logging.WARNING
    loggers = [logging.getLogger(name) for name in ("authbridge", "alembic")]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
        lg.addHandler(handler)
        lg.propagate = False
    try:
        yield
    finally:
        for lg, old_level, propagate in saved:
            lg.removeHandler(handler)
            lg.setLevel(old_level)
            lg.propagate = propagate


async def _with_auth(
    config: AuthConfig, out: _Output, run: Callable[[Auth], Awaitable[int]]
) -> int:
    auth = Auth(config)
    where = redact_url(config.database_url)
    try:
        # The database is looked at first (a SQLite file on disk, a server by connecting once),
        # so a missing or unreachable one is one line, not the engine's failures as it opens.
        # (A server database without keys is a configuration error, said before connecting.)
        failure = sqlite_file_failure(config.database_url)
        if failure is None and config.jwt_private_keys:
            failure = await server_failure(config.database_url)
        if failure is None:
            return await run(auth)
    except ConfigError as exc:
        out.error(str(exc))
        return EXIT_USAGE
    except Exception as exc:
        from_store = isinstance(exc, StoreUnavailable | DatabaseError)
        failure = connect_failure(config.database_url, exc) if from_store else None
        if failure is None:
            _report_failure(out, where, exc)
            return EXIT_FAILURE
    finally:
        await auth.close()
    _report_unusable(out, where, failure)
    return EXIT_FAILURE


def _report_unusable(out: _Output, where: str, failure: ConnectFailure) -> None:
    """The database is not there or not reachable: say so, with the stable code first (never
    the advice to upgrade a database the upgrade cannot reach either)."""
    if failure.code == DATABASE_MISSING:
        out.error(f"{failure.code}: {failure.detail} ({where}); create it, then run `{_UPGRADE}`")
    else:
        out.error(f"{failure.code}: cannot reach {where}: {failure.detail}")


def _report_failure(out: _Output, where: str, exc: Exception) -> None:
    if isinstance(exc, StoreUnavailable):
        cause = exc.__cause__
        detail = f"{type(cause).__name__}: {_first_line(cause)}" if cause is not None else str(exc)
        out.error(f"database unavailable ({where}): {detail}")
        if _MISSING_SCHEMA.search(detail):
            out.error(f"are the tables there? run `{_UPGRADE}`")
    elif isinstance(exc, DatabaseError | OSError):
        out.error(f"database error ({where}): {type(exc).__name__}: {_first_line(exc)}")
    else:
        # Drivers raise their own errors (asyncpg, outside SQLAlchemy's wrapping): report them
        # in one line, never as a traceback that might carry the URL. (The only AuthErrors the
        # commands can raise are StoreUnavailable and ConfigError: they never sign in, issue
        # tokens or send mail, and the one InvalidEmail, of --email, is answered where it arises.)
        out.error(f"{type(exc).__name__} ({where}): {_first_line(exc)}")


_UPGRADE = "authbridge db upgrade"

_MISSING_SCHEMA = re.compile(r"no such (table|column)|\b(relation|column) .*\bdoes not exist")
"""A table or column the command needs is missing (SQLite, PostgreSQL): the schema is behind."""


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- keys ----------------------------------------------------------------------------------------


def _keys_generate(
    out: _Output, algorithm: Algorithm, config: AuthConfig | None, *, as_json: bool = False
) -> int:
    kept: tuple[str, ...] = config.jwt_private_keys if config is not None else ()
    if any(not key.lstrip().startswith("-----BEGIN") for key in kept):
        out.error("--rotate needs PEM keys in AUTHBRIDGE_JWT_PRIVATE_KEYS (JWK keys found)")
        return EXIT_USAGE
    pem = generate_private_key_pem(algorithm)
    key = SigningKey.load(pem)
    value = "".join(k.strip() + "\n" for k in (*kept, pem)).replace("\n", "\\n")
    assert split_keys(value)[-1].strip() == pem.strip()
    if as_json:
        payload = {"kid": key.kid, "algorithm": key.algorithm, "kept": len(kept)}
        out.print(
            json.dumps({**payload, "variable": "AUTHBRIDGE_JWT_PRIVATE_KEYS", "value": value})
        )
        return EXIT_OK
    note = f", after {len(kept)} kept key(s) that still verify" if kept else ""
    out.print(f"# {key.algorithm} key {key.kid} (the last key signs{note})")
    out.print(f"AUTHBRIDGE_JWT_PRIVATE_KEYS='{value}'")
    return EXIT_OK


# -- db ------------------------------------------------------------------------------------------


async def _db_init(auth: Auth, out: _Output, args: argparse.Namespace) -> int:
    created, before, after = await init_schema(auth.store)
    if args.json:
        out.print(json.dumps({"created": created, "before": before, "revision": after}))
        return EXIT_OK
    if created:
        message = "created the auth tables"
    else:
        message = "tables are managed by migrations; " + _upgrade_message(before, after)
    out.print(f"{message} on {redact_url(auth.store.url)}")
    return EXIT_OK


def _upgrade_message(before: str | None, after: str) -> str:
    if before == after:
        return f"already at revision {after}"
    return f"upgraded from {before or 'an empty database'} to revision {after}"


async def _db_upgrade(auth: Auth, out: _Output, args: argparse.Namespace) -> int:
    from alembic.util import CommandError

    try:
        before, after = await upgrade_schema(auth.store, args.revision)
    except CommandError as exc:  # an unknown revision: a usage error, as with --sql
        out.error(str(exc))
        return EXIT_USAGE
    if args.json:
        out.print(json.dumps({"before": before, "revision": after}))
        return EXIT_OK
    out.print(f"{_upgrade_message(before, after)} on {redact_url(auth.store.url)}")
    return EXIT_OK


def _db_upgrade_sql(url: str, out: _Output, args: argparse.Namespace) -> int:
    from alembic.util import CommandError

    from .migrations import upgrade_sql

    try:
        script = upgrade_sql(url, args.revision, start=args.start)
    except CommandError as exc:  # an unknown revision
        out.error(str(exc))
        return EXIT_USAGE
    if args.json:
        target = head_revision() if args.revision == "head" else args.revision
        out.print(json.dumps({"before": args.start, "revision": target, "sql": script}))
        return EXIT_OK
    out.print(script.rstrip("\n"))
    return EXIT_OK


async def _db_current(auth: Auth, out: _Output, args: argparse.Namespace) -> int:
    current = await current_revision(auth.store)
    if args.json:
        out.print(json.dumps({"current": current, "head": head_revision()}))
        return EXIT_OK
    out.print(f"current: {current or 'none'}")
    out.print(f"head:    {head_revision()}")
    return EXIT_OK


# -- cleanup -------------------------------------------------------------------------------------


async def _cleanup(auth: Auth, out: _Output, args: argparse.Namespace) -> int:
    progress = _progress(args)
    report = await auth.cleanup(
        batch_size=args.batch_size, progress=progress if progress.enabled else None
    )
    progress.finish()
    if args.json:
        deleted = {_camel(f.name): getattr(report, f.name) for f in dataclasses.fields(report)}
        out.print(json.dumps({"deleted": deleted}))
        return EXIT_OK
    out.print("deleted expired rows:")
    for field in dataclasses.fields(report):
        out.print(f"  {field.name:<18} {getattr(report, field.name)}")
    return EXIT_OK


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.title() for word in rest)


# -- passwords -----------------------------------------------------------------------------------


async def _wrap_imported(auth: Auth, batch_size: int, progress: _Progress) -> int:
    """Wrap every stored imported scrypt hash in argon2id; returns how many were wrapped."""
    total = await auth.accounts.count_unwrapped_secrets() if progress.enabled else None
    wrapped = done = 0
    after = ""
    while batch := await auth.accounts.imported_secrets(batch_size, after):
        for account_id, secret in batch:
            new = await asyncio.to_thread(auth.passwords.wrap_scrypt_hash, secret)
            if new != secret and await auth.accounts.swap_secret(account_id, secret, new):
                wrapped += 1
        after = batch[-1][0]
        done += len(batch)
        progress(done, max(total, done) if total is not None else None)
    progress.finish()
    return wrapped


async def _passwords_wrap_imported(auth: Auth, out: _Output, args: argparse.Namespace) -> int:
    wrapped = await _wrap_imported(auth, args.batch_size, _progress(args))
    if args.json:
        out.print(json.dumps({"wrapped": wrapped}))
    else:
        out.print(f"wrapped {wrapped} imported password hash(es) in argon2id")
    return EXIT_OK


# -- sessions ------------------------------------------------------------------------------------


async def _user_id(auth: Auth, out: _Output, args: argparse.Namespace) -> str | None:
    if args.user_id is not None:
        return str(args.user_id)
    try:
        email = normalize_email(args.email)
    except InvalidEmail:
        out.error(f"{args.email!r} is not an email address")
        return None
    found = await auth.users.id_by_email(email)
    if found is None:
        out.error(f"no user with email {email}")
        return None
    return found


def _session_json(s: SessionInfo) -> dict[str, Any]:
    return {
        "sessionId": s.session_id,
        "userId": s.user_id,
        "createdAt": s.created_at.isoformat(),
        "lastActiveAt": s.last_active_at.isoformat(),
        "expiresAt": s.expires_at.isoformat(),
        "createdIp": s.created_ip,
        "userAgent": s.user_agent,
    }


async def _sessions_list(auth: Auth, out: _Output, args: argparse.Namespace) -> int:
    user_id = await _user_id(auth, out, args)
    if user_id is None:
        return EXIT_FAILURE
    sessions = await auth.list_sessions(user_id)
    if args.json:
        out.print(json.dumps({"userId": user_id, "sessions": [_session_json(s) for s in sessions]}))
        return EXIT_OK
    if not sessions:
        out.print(f"user {user_id} has no live sessions")
        return EXIT_OK
    out.print(f"{'SESSION':<24} {'LAST ACTIVE':<20} {'EXPIRES':<20} {'IP':<16} USER AGENT")
    for s in sessions:
        out.print(
            f"{s.session_id:<24} {s.last_active_at:%Y-%m-%d %H:%M:%S}  "
            f"{s.expires_at:%Y-%m-%d %H:%M:%S}  {s.created_ip or '-':<16} {s.user_agent or '-'}"
        )
    return EXIT_OK


async def _sessions_revoke(auth: Auth, out: _Output, args: argparse.Namespace) -> int:
    await auth.open()
    if await auth.get_session(args.session_id) is None:
        # Recording a revocation for an id that never existed would only add a row.
        out.error(f"no session {args.session_id}: nothing was revoked or recorded")
        return EXIT_FAILURE
    await auth.sessions.revoke([args.session_id])
    if args.json:
        out.print(json.dumps({"revoked": args.session_id}))
        return EXIT_OK
    out.print(
        f"revoked session {args.session_id}; its access tokens are refused on every instance "
        f"(at once where they listen for PostgreSQL notifications, else within "
        f"{auth.config.revocation_poll_interval.total_seconds():g} s)"
    )
    return EXIT_OK


async def _sessions_revoke_user(auth: Auth, out: _Output, args: argparse.Namespace) -> int:
    user_id = await _user_id(auth, out, args)
    if user_id is None:
        return EXIT_FAILURE
    ended = await auth.sign_out_everywhere(user_id)
    if args.json:
        out.print(json.dumps({"userId": user_id, "revoked": ended}))
        return EXIT_OK
    out.print(f"revoked {ended} session(s) of user {user_id}")
    return EXIT_OK


# -- import --------------------------------------------------------------------------------------


async def _import_convex(auth: Auth, out: _Output, args: argparse.Namespace) -> int:
    from pathlib import Path

    from .convex_import import ConvexExportError, import_convex_export
    from .store.imports import ImportRepository

    if not await ImportRepository(auth.store).has_convex_ids():
        out.error("the auth tables lack the convex_id column: run `authbridge db upgrade` first")
        return EXIT_FAILURE
    progress = _progress(args)
    try:
        report = await import_convex_export(
            auth.store,
            Path(args.export),
            now=auth.clock(),
            dry_run=args.dry_run,
            progress=progress if progress.enabled else None,
        )
    except ConvexExportError as exc:
        out.error(str(exc))
        return EXIT_FAILURE
    finally:
        progress.finish()
    # Imported scrypt hashes are wrapped in argon2id right away, so an imported account costs
    # the same to check as any other (timing does not tell imported accounts apart).
    wrapped = 0 if report.dry_run else await _wrap_imported(auth, 100, _progress(args))
    if args.json:
        out.print(json.dumps({**report.as_json(), "passwordsWrapped": wrapped}))
        return EXIT_OK
    verb = "would import" if report.dry_run else "imported"
    out.print(
        f"{verb} {report.users_created} user(s) and {report.accounts_created} account(s) "
        f"({report.passwords_imported} with their password); "
        f"already imported: {report.users_existing} user(s), {report.accounts_existing} account(s)"
    )
    for skipped in report.skipped:
        out.print(f"  skipped {skipped.table} {skipped.convex_id}: {skipped.reason}")
    return EXIT_OK


_Command = Callable[[Auth, _Output, argparse.Namespace], Awaitable[int]]

_COMMANDS: dict[tuple[str, str | None], _Command] = {
    ("db", "init"): _db_init,
    ("db", "upgrade"): _db_upgrade,
    ("db", "current"): _db_current,
    ("cleanup", None): _cleanup,
    ("passwords", "wrap-imported"): _passwords_wrap_imported,
    ("sessions", "list"): _sessions_list,
    ("sessions", "revoke"): _sessions_revoke,
    ("sessions", "revoke-user"): _sessions_revoke_user,
    ("import", "convex"): _import_convex,
}


if __name__ == "__main__":
    raise SystemExit(main())
