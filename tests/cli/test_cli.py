"""The ``authbridge`` command, in-process (``main([...])``) and as a real process."""

from __future__ import annotations

import asyncio
import io
import json
import shlex
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from authbridge import Auth, AuthConfig, InvalidCredentials, migrations
from authbridge.cli import main
from authbridge.config import split_keys
from authbridge.tokens import KeySet
from tests.toolkit.engines import FAST_PASSWORDS

from .conftest import DB_PASSWORD, run_cli

PASSWORD = "correct horse battery"
HEAD = migrations.head_revision()
"""The newest shipped migration (what upgrades end at)."""


def _config(env: dict[str, str]) -> AuthConfig:
    return AuthConfig.from_env(env, password=FAST_PASSWORDS)


def _counts(output: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


# -- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_keys_generate_prints_a_line_that_from_env_loads(
    algorithm: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "generate", "--algorithm", algorithm]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert len(lines) == 1
    name, value = shlex.split(lines[0])[0].split("=", 1)
    assert name == "AUTHBRIDGE_JWT_PRIVATE_KEYS"
    assert "\n" not in value and "\\n" in value
    config = AuthConfig.from_env({name: value})
    keys = KeySet.from_texts(config.jwt_private_keys)
    assert keys.algorithms == {algorithm}


def test_keys_generate_rotate_keeps_the_configured_keys_and_signs_with_the_new_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "generate"]) == 0
    first = shlex.split(capsys.readouterr().out.splitlines()[-1])[0].split("=", 1)[1]
    monkeypatch.setenv("AUTHBRIDGE_JWT_PRIVATE_KEYS", first)
    assert main(["keys", "generate", "--rotate", "--algorithm", "EdDSA"]) == 0
    rotated = shlex.split(capsys.readouterr().out.splitlines()[-1])[0].split("=", 1)[1]
    keys = split_keys(rotated)
    assert len(keys) == 2
    assert keys[0].strip() == split_keys(first)[0].strip()
    assert KeySet.from_texts(keys).algorithms == {"ES256", "EdDSA"}


# -- db ------------------------------------------------------------------------------------------


def test_db_upgrade_creates_the_tables_and_is_idempotent(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    assert f"to revision {migrations.head_revision()}" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert f"already at revision {migrations.head_revision()}" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert f"current: {migrations.head_revision()}" in capsys.readouterr().out


def test_db_init_creates_tables_that_upgrade_then_recognises(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "init"]) == 0
    assert "created the auth tables" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert f"already at revision {migrations.head_revision()}" in capsys.readouterr().out


def test_db_upgrade_adopts_tables_created_without_migrations(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    async def create() -> None:
        async with Auth(_config(cli_env), create_tables=True):
            pass

    asyncio.run(create())
    assert main(["db", "upgrade"]) == 0
    # Stamped as the baseline, then brought to head (its steps skip what create_all made).
    assert f"to revision {migrations.head_revision()}" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert f"already at revision {migrations.head_revision()}" in capsys.readouterr().out


# -- cleanup -------------------------------------------------------------------------------------


@dataclass
class Seeded:
    old_user: str
    live_user: str
    live_sessions: list[str]


def _seed(env: dict[str, str]) -> Seeded:
    """An expired session, an old revocation, an old rate-limit row, an expired passkey challenge
    and an abandoned TOTP enrolment, plus live sessions."""

    async def seed() -> Seeded:
        past = datetime.now(timezone.utc) - timedelta(days=40)
        async with Auth(_config(env), clock=lambda: past) as old:
            first = await old.sign_up_with_password("old@example.com", PASSWORD)
            second = await old.sign_in_with_password("old@example.com", PASSWORD)
            await old.sign_out(second.session_id)
            with pytest.raises(InvalidCredentials):
                await old.sign_in_with_password("old@example.com", "a wrong password")
            # A passkey ceremony and a TOTP enrolment nobody finished.
            await old.passkeys.add_challenge("signin", "c" * 43, None, past, past + timedelta(1))
            await old.factors.begin_totp(first.user_id, "sealed-secret", past)
        async with Auth(_config(env)) as live:
            one = await live.sign_up_with_password("live@example.com", PASSWORD)
            two = await live.sign_in_with_password("live@example.com", PASSWORD)
        return Seeded(first.user_id, one.user_id, [one.session_id, two.session_id])

    return asyncio.run(seed())


def _live_sessions(env: dict[str, str], user_id: str) -> list[str]:
    async def listing() -> list[str]:
        async with Auth(_config(env)) as auth:
            return [s.session_id for s in await auth.list_sessions(user_id)]

    return asyncio.run(listing())


def test_cleanup_deletes_expired_rows_in_batches_and_prints_counts(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    seeded = _seed(cli_env)
    capsys.readouterr()
    assert main(["cleanup", "--batch-size", "1"]) == 0
    counts = _counts(capsys.readouterr().out)
    assert counts == {
        "sessions": 1,
        "refresh_tokens": 1,
        "revocations": 1,
        "rate_limits": 1,
        "anonymous_users": 0,
        "passkey_challenges": 1,
        "totp_enrolments": 1,
        "verification_codes": 0,
    }
    assert sorted(_live_sessions(cli_env, seeded.live_user)) == sorted(seeded.live_sessions)
    assert main(["cleanup"]) == 0
    assert set(_counts(capsys.readouterr().out).values()) == {0}


def test_cleanup_rejects_a_batch_size_below_one(cli_env: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["cleanup", "--batch-size", "0"])
    assert exc.value.code == 2


# -- sessions ------------------------------------------------------------------------------------


def test_sessions_list_by_user_id_and_by_email(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    seeded = _seed(cli_env)
    capsys.readouterr()
    assert main(["sessions", "list", seeded.live_user, "--json"]) == 0
    by_id = json.loads(capsys.readouterr().out)
    assert sorted(s["sessionId"] for s in by_id["sessions"]) == sorted(seeded.live_sessions)
    assert main(["sessions", "list", "--email", "LIVE@example.com", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == by_id
    assert main(["sessions", "list", seeded.live_user]) == 0
    table = capsys.readouterr().out
    assert all(session in table for session in seeded.live_sessions)
    assert main(["sessions", "list", seeded.old_user]) == 0
    assert "no live sessions" in capsys.readouterr().out


def test_sessions_list_of_an_unknown_email_fails(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["sessions", "list", "--email", "nobody@example.com"]) == 1
    assert "no user with email nobody@example.com" in capsys.readouterr().err


def test_sessions_revoke_ends_one_session_and_revoke_user_the_rest(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    seeded = _seed(cli_env)
    first, second = seeded.live_sessions
    assert main(["sessions", "revoke", first]) == 0
    assert _live_sessions(cli_env, seeded.live_user) == [second]
    assert main(["sessions", "revoke", first]) == 1
    assert main(["sessions", "revoke-user", "--email", "live@example.com"]) == 0
    assert "revoked 1 session(s)" in capsys.readouterr().out
    assert _live_sessions(cli_env, seeded.live_user) == []


def test_a_user_selector_is_required(cli_env: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sessions", "list"])
    assert exc.value.code == 2


# -- configuration, errors, secrets --------------------------------------------------------------


def test_an_invalid_variable_is_named_and_exits_2(
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AUTHBRIDGE_SESSION_SHARING", "sometimes")
    assert main(["cleanup"]) == 2
    assert "AUTHBRIDGE_SESSION_SHARING" in capsys.readouterr().err


def test_missing_tables_are_reported_with_a_hint(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cleanup"]) == 1
    err = capsys.readouterr().err
    assert "authbridge: error: are the tables there? run `authbridge db upgrade`\n" in err
    assert "DatabaseMissing" not in err


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.pg)], indirect=True
)
def test_the_database_password_never_appears_in_output(
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = cli_env["AUTHBRIDGE_DATABASE_URL"]
    assert DB_PASSWORD in url
    outputs: list[str] = []
    for args in (
        ["-v", "db", "upgrade"],
        ["-v", "db", "init"],
        ["-v", "cleanup"],
        ["sessions", "list", "--email", "nobody@example.com"],
    ):
        main(args)
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
    for broken in (
        url.rsplit("/", 1)[0] + "/no_such_database",
        url.replace("127.0.0.1:5432", "127.0.0.1:9"),
    ):
        monkeypatch.setenv("AUTHBRIDGE_DATABASE_URL", broken)
        assert main(["-v", "cleanup"]) == 1
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
        env = {**cli_env, "AUTHBRIDGE_DATABASE_URL": broken}
        child = run_cli(["-v", "db", "upgrade"], env)
        assert child.returncode == 1
        assert "Traceback" not in child.stderr
        outputs += [child.stdout, child.stderr]
    text = "\n".join(outputs)
    assert "postgres:***@127.0.0.1" in text
    assert DB_PASSWORD not in text


def test_runs_as_a_process_and_as_the_installed_script(cli_env: dict[str, str]) -> None:
    upgraded = run_cli(["db", "upgrade"], cli_env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"revision {migrations.head_revision()}" in upgraded.stdout
    script = Path(sys.executable).parent / "authbridge"
    if not script.exists():
        pytest.skip("the console script is not installed in this environment")
    cleaned = run_cli(["cleanup"], cli_env, script=True)
    assert cleaned.returncode == 0, cleaned.stderr
    assert _counts(cleaned.stdout) == {
        "sessions": 0,
        "refresh_tokens": 0,
        "revocations": 0,
        "rate_limits": 0,
        "anonymous_users": 0,
        "passkey_challenges": 0,
        "totp_enrolments": 0,
        "verification_codes": 0,
    }
    usage = run_cli(["sessions", "list"], cli_env, script=True)
    assert usage.returncode == 2
    assert "USER_ID" in usage.stderr


def test_ids_starting_with_a_dash_are_not_taken_for_options(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["sessions", "list", "-AbCdEfGhIjKlMnOpQrStUv", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sessions"] == []
    assert main(["sessions", "revoke", "-AbCdEfGhIjKlMnOpQrStUv"]) == 1


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.pg)], indirect=True
)
@pytest.mark.parametrize("command", [["db", "upgrade"], ["db", "init"]])
def test_several_instances_deploying_at_once_all_succeed(
    cli_env: dict[str, str], command: list[str]
) -> None:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda _: run_cli(command, cli_env), range(3)))
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    assert main(["db", "current"]) == 0


def test_revoking_an_unknown_session_records_nothing_and_says_so(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["sessions", "revoke", "no-such-session"]) == 1
    assert "nothing was revoked or recorded" in capsys.readouterr().err

    async def revocations() -> int:
        from sqlalchemy import func, select

        async with Auth(_config(cli_env)) as auth, auth.store.read() as conn:
            table = auth.store.tables.revocations
            return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())

    assert asyncio.run(revocations()) == 0


# -- passwords -----------------------------------------------------------------------------------


def test_passwords_wrap_imported_wraps_scrypt_hashes_that_keep_signing_in(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from authbridge.passwords import scrypt_hash
    from authbridge.store import new_id

    assert main(["db", "upgrade"]) == 0
    emails = [f"imported{i}@example.com" for i in range(3)]

    async def seed() -> str:
        async with Auth(_config(cli_env)) as auth:
            native = (await auth.sign_up_with_password("native@example.com", PASSWORD)).user_id
            t = auth.store.tables
            async with auth.store.transaction() as conn:
                for email in emails:
                    user_id = new_id()
                    await conn.execute(
                        t.users.insert().values(id=user_id, created_at=auth.clock(), email=email)
                    )
                    await conn.execute(
                        t.accounts.insert().values(
                            id=new_id(),
                            created_at=auth.clock(),
                            user_id=user_id,
                            provider="password",
                            provider_account_id=email,
                            secret=scrypt_hash(PASSWORD),
                        )
                    )
            return native

    asyncio.run(seed())
    capsys.readouterr()
    assert main(["passwords", "wrap-imported", "--batch-size", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"wrapped": 3}
    assert main(["passwords", "wrap-imported"]) == 0
    assert "wrapped 0 imported" in capsys.readouterr().out

    async def check() -> list[str]:
        async with Auth(_config(cli_env)) as auth:
            async with auth.store.read() as conn:
                secrets = [
                    row.secret
                    for row in await conn.execute(auth.store.tables.accounts.select())
                    if row.provider_account_id in emails
                ]
            for email in emails:
                await auth.sign_in_with_password(email, PASSWORD)
            await auth.sign_in_with_password("native@example.com", PASSWORD)
            return secrets

    secrets = asyncio.run(check())
    assert len(secrets) == 3
    assert all(s.startswith("scrypt-argon2id:") for s in secrets)


# -- scripts and terminals (DESIGN §17.1) --------------------------------------------------------


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_every_command_a_script_reads_answers_json(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--sql", "--from", "0005", "--json"]) == 0
    offline = json.loads(capsys.readouterr().out)
    assert (offline["before"], offline["revision"]) == ("0005", HEAD)
    assert "-- Running upgrade 0005 -> 0006" in offline["sql"]
    assert main(["db", "upgrade", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"before": None, "revision": HEAD}
    assert main(["db", "init", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "created": False,
        "before": HEAD,
        "revision": HEAD,
    }
    assert main(["db", "current", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"current": HEAD, "head": HEAD}
    seeded = _seed(cli_env)
    capsys.readouterr()
    assert main(["cleanup", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "deleted": {
            "sessions": 1,
            "refreshTokens": 1,
            "revocations": 1,
            "rateLimits": 1,
            "anonymousUsers": 0,
            "passkeyChallenges": 1,
            "totpEnrolments": 1,
            "verificationCodes": 0,
        }
    }
    first, _ = seeded.live_sessions
    assert main(["sessions", "revoke", first, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"revoked": first}
    assert main(["sessions", "revoke-user", seeded.live_user, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"userId": seeded.live_user, "revoked": 1}


def test_keys_generate_json_carries_the_variable_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keys", "generate", "--algorithm", "EdDSA", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["algorithm"] == "EdDSA" and printed["kept"] == 0
    config = AuthConfig.from_env({printed["variable"]: printed["value"]})
    assert KeySet.from_texts(config.jwt_private_keys).signing_key.kid == printed["kid"]


def test_the_algorithm_choices_are_the_configs(capsys: pytest.CaptureFixture[str]) -> None:
    from authbridge.config import ALGORITHMS

    with pytest.raises(SystemExit):
        main(["keys", "generate", "--algorithm", "HS256"])
    assert "{" + ",".join(ALGORITHMS) + "}" in capsys.readouterr().err


def test_cleanup_shows_progress_on_a_terminal_and_is_quiet_when_piped(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    # Piped stderr (capsys), or --json on a terminal: nothing but the answer.
    assert main(["cleanup"]) == 0
    assert capsys.readouterr().err == ""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["cleanup", "--json"]) == 0
    assert terminal.getvalue() == ""
    _seed(cli_env)
    capsys.readouterr()
    assert main(["cleanup", "--batch-size", "1"]) == 0
    shown = terminal.getvalue()
    assert "\r1 rows" in shown and "\r4 rows, " in shown and "/s" in shown
    assert shown.endswith("\n")
    assert _counts(capsys.readouterr().out)["sessions"] == 1


def test_wrap_imported_shows_rows_and_time_left_on_a_terminal(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from authbridge.passwords import scrypt_hash

    assert main(["db", "upgrade"]) == 0

    async def seed() -> None:
        async with Auth(_config(cli_env)) as auth:
            for i in range(3):
                email = f"imported{i}@example.com"
                await auth.users.create(
                    now=auth.clock(),
                    email=email,
                    account=("password", email, scrypt_hash(PASSWORD)),
                )

    asyncio.run(seed())
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["passwords", "wrap-imported", "--batch-size", "2"]) == 0
    shown = terminal.getvalue()
    assert "\r2/3 rows" in shown and "\r3/3 rows" in shown and "s left" in shown
    assert "wrapped 3 imported" in capsys.readouterr().out
