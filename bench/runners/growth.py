"""Growth runner (report table [4]): what the table sizes cost outside the request path.

(The per-request side - a warm cookie request with 1k/10k/100k live sessions and revocations -
is in the in-process table, as ``authbridge-warm-<n>k-sessions`` rows.)

* Revocation set: with ``n`` sessions and ``n`` unexpired revocations in the tables, the time
  ``Auth.open`` takes (it loads the set), the steady-state poll (one per
  ``revocation_poll_interval`` on every instance, on the event loop), and the poll right after a
  mass revocation (rows newer than the poll's overlap window are read again on every poll).
* Cleanup: ``Auth.cleanup()`` over ``n`` expired sessions with one expired refresh token each,
  on SQLite and on PostgreSQL.

Rows are inserted in bulk with SQLAlchemy Core ``executemany``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, update

from authbridge import Auth
from bench.report import one_line
from bench.runners.inprocess import ScenarioUnavailable
from bench.scenarios import databases

POLL_SAMPLES = 5


@dataclass(frozen=True)
class GrowthSettings:
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    cleanup_size: int = 100_000
    cleanup_backends: tuple[databases.Backend, ...] = ("sqlite", "postgresql")
    max_seconds: float = 60.0
    """Cleanup gives up (and reports the partial count) after this long."""

    @classmethod
    def quick(cls) -> GrowthSettings:
        return cls(
            sizes=(1_000, 10_000, 100_000), cleanup_size=20_000, cleanup_backends=("sqlite",)
        )


@dataclass
class PollResult:
    size: int
    loaded: int = 0
    open_s: float = float("nan")
    burst_poll_s: list[float] = field(default_factory=list)
    steady_poll_s: list[float] = field(default_factory=list)
    insert_s: float = float("nan")
    skipped: str | None = None


@dataclass
class CleanupResult:
    backend: str
    size: int
    insert_s: float = float("nan")
    cleanup_s: float = float("nan")
    sessions: int = 0
    refresh_tokens: int = 0
    left: int = -1
    skipped: str | None = None


async def _poll_once(auth: Auth) -> float:
    started = time.perf_counter()
    await auth.revocations.poll(auth.store)
    return time.perf_counter() - started


async def revocation_growth(
    settings: GrowthSettings, log: Callable[[str], None] = print
) -> list[PollResult]:
    results: list[PollResult] = []
    for size in settings.sizes:
        result = PollResult(size)
        results.append(result)
        try:
            async with databases.opened_auth("sqlite") as opened:
                auth = opened.auth
                started = time.perf_counter()
                await databases.bulk_sessions(auth, size, expired=False, revoked=True)
                result.insert_s = time.perf_counter() - started
                # A fresh engine on the same database: open() loads the whole set.
                fresh = databases.make_auth(opened.database)
                try:
                    started = time.perf_counter()
                    await fresh.open()
                    result.open_s = time.perf_counter() - started
                    result.loaded = len(fresh.revocations)
                    # Just after a mass revocation every poll re-reads the recent rows.
                    for _ in range(POLL_SAMPLES):
                        result.burst_poll_s.append(await _poll_once(fresh))
                    # Steady state: the revocations are older than the overlap window.
                    table = fresh.store.tables.revocations
                    async with fresh.store.transaction() as conn:
                        await conn.execute(
                            update(table).values(
                                revoked_at=datetime.now(timezone.utc) - timedelta(minutes=5)
                            )
                        )
                    for _ in range(POLL_SAMPLES):
                        result.steady_poll_s.append(await _poll_once(fresh))
                finally:
                    await fresh.close()
        except Exception as exc:
            log(f"  FAILED revocations {size}: {type(exc).__name__}: {one_line(str(exc))}")
            result.skipped = f"failed: {exc}"
    return results


async def cleanup_growth(
    settings: GrowthSettings, log: Callable[[str], None] = print
) -> list[CleanupResult]:
    results: list[CleanupResult] = []
    for backend in settings.cleanup_backends:
        result = CleanupResult(backend, settings.cleanup_size)
        results.append(result)
        try:
            async with databases.opened_auth(backend) as opened:
                auth = opened.auth
                started = time.perf_counter()
                await databases.bulk_sessions(
                    auth, settings.cleanup_size, expired=True, revoked=False
                )
                result.insert_s = time.perf_counter() - started
                started = time.perf_counter()
                deadline = started + settings.max_seconds
                while time.perf_counter() < deadline:
                    report = await auth.cleanup(max_batches=20)
                    result.sessions += report.sessions
                    result.refresh_tokens += report.refresh_tokens
                    if report.sessions == 0 and report.refresh_tokens == 0:
                        break
                result.cleanup_s = time.perf_counter() - started
                sessions = auth.store.tables.sessions
                count = select(func.count()).select_from(sessions)
                async with auth.store.read() as conn:
                    result.left = int((await conn.execute(count)).scalar_one())
        except ScenarioUnavailable as exc:
            log(f"  skipped cleanup on {backend}: {one_line(str(exc))}")
            result.skipped = str(exc)
        except Exception as exc:
            log(f"  FAILED cleanup on {backend}: {type(exc).__name__}: {one_line(str(exc))}")
            result.skipped = f"failed: {exc}"
    return results
