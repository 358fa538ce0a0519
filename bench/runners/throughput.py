"""Throughput runner (report table [3]): refresh rotations, password hashing, sign-in storms.

* Refresh: ``Auth.refresh`` in a loop of sequential rotations (each call presents the token the
  previous one returned), alone and as ``concurrency`` independent chains at once, on SQLite and
  on PostgreSQL.  All four configurations stay open and are measured in interleaved rounds.
* Sign-in: argon2id hashes/s through the library's hashing pool, and full password sign-ins/s,
  at the configured cost (default: OWASP's minimum, m=19 MiB, t=2, p=1).
* Event-loop health: a warm cookie-authenticated in-process ``GET /me`` is requested back to back
  on the event loop that also serves ``storm`` concurrent sign-ins.  Each request's latency runs
  from the moment it is ready to go (before yielding to the loop once) to its response, so it
  includes any time the loop spends on other work.  Idle and storm phases alternate.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from authbridge import Auth, AuthMiddleware, PasswordConfig
from bench.report import one_line, percentile
from bench.runners.inprocess import Exchange, ScenarioUnavailable, http_scope
from bench.scenarios import authbridge_app, databases


@dataclass(frozen=True)
class ThroughputSettings:
    rounds: int = 3
    refresh_round_seconds: float = 1.0
    refresh_concurrency: int = 8
    max_ops_per_round: int = 5_000
    refresh_diagnostics: bool = True
    """Also measure PostgreSQL without ``pool_pre_ping`` (one round trip less per checkout)."""
    hash_round_seconds: float = 1.2
    signin_concurrency: int = 8
    storm: int = 8
    """Concurrent sign-ins during the storm."""
    storm_rounds: int = 4
    idle_seconds: float = 0.5
    storm_seconds: float = 1.0
    storm_variant_workers: int | None = 1
    """Also run the storm with this many hashing threads (None: skip the variant)."""

    @classmethod
    def quick(cls) -> ThroughputSettings:
        return cls(
            rounds=2,
            refresh_round_seconds=0.4,
            hash_round_seconds=0.6,
            storm_rounds=1,
            idle_seconds=0.6,
            storm_seconds=1.2,
            storm_variant_workers=None,
            refresh_diagnostics=False,
        )


@dataclass
class Rate:
    name: str
    unit: str
    description: str = ""
    per_round: list[float] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    ops: int = 0
    errors: int = 0
    skipped: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.per_round) if self.per_round else float("nan")


async def _timed_loop(
    step: Callable[[], Awaitable[None]], seconds: float, max_ops: int, rate: Rate
) -> int:
    """Run ``step`` back to back until ``seconds`` or ``max_ops``; record latencies."""
    deadline = time.perf_counter() + seconds
    done = 0
    while done < max_ops and time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            await step()
        except Exception:
            rate.errors += 1
            if rate.errors > 50:
                raise
            continue
        rate.latencies_s.append(time.perf_counter() - started)
        done += 1
    return done


async def parallel(
    steps: Sequence[Callable[[], Awaitable[None]]], seconds: float, max_ops: int, rate: Rate
) -> None:
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(_timed_loop(step, seconds, max(1, max_ops // len(steps)), rate) for step in steps)
    )
    elapsed = time.perf_counter() - started
    rate.ops += sum(counts)
    rate.per_round.append(sum(counts) / elapsed)


# --------------------------------------------------------------------------------------------
# Refresh


def _chain(auth: Auth, first_token: str) -> Callable[[], Awaitable[None]]:
    current = [first_token]

    async def step() -> None:
        tokens = await auth.refresh(current[0])
        current[0] = tokens.refresh_token

    return step


async def refresh_rates(
    settings: ThroughputSettings, log: Callable[[str], None] = print
) -> list[Rate]:
    results: list[Rate] = []
    plans: list[tuple[Rate, list[Callable[[], Awaitable[None]]]]] = []
    async with contextlib.AsyncExitStack() as stack:
        variants: list[tuple[databases.Backend, str, dict[str, Any] | None]] = [
            ("sqlite", "", None),
            ("postgresql", "", None),
        ]
        if settings.refresh_diagnostics:
            variants.append(("postgresql", "-no-pre-ping", {"pool_pre_ping": False}))
        for backend, suffix, engine_options in variants:
            label = "SQLite" if backend == "sqlite" else "PostgreSQL"
            if engine_options:
                label += ", " + ", ".join(f"{k}={v}" for k, v in engine_options.items())
            seq = Rate(
                f"refresh-{backend}-sequential{suffix}",
                "refreshes/s",
                f"Auth.refresh chain, one at a time ({label})",
            )
            conc = Rate(
                f"refresh-{backend}-x{settings.refresh_concurrency}{suffix}",
                "refreshes/s",
                f"{settings.refresh_concurrency} chains at once ({label})",
            )
            results += [seq] if suffix else [seq, conc]
            try:
                opened = await stack.enter_async_context(
                    databases.opened_auth(backend, engine_options=engine_options)
                )
            except (ScenarioUnavailable, OSError) as exc:
                log(f"  skipped refresh on {label}: {one_line(str(exc))}")
                seq.skipped = conc.skipped = str(exc)
                continue
            auth = opened.auth
            user_id = opened.signed_in.user_id
            chains = [_chain(auth, opened.signed_in.tokens.refresh_token)]
            for _ in range(0 if suffix else settings.refresh_concurrency):
                created = await auth.sessions.create(user_id)
                chains.append(_chain(auth, created.refresh_token))
            for step in chains:  # warm-up: connections, statement caches
                await step()
            plans.append((seq, chains[:1]))
            if not suffix:
                plans.append((conc, chains[1:]))
        for round_index in range(settings.rounds):
            shift = round_index % max(len(plans), 1)
            for rate, steps in plans[shift:] + plans[:shift]:
                try:
                    await parallel(
                        steps, settings.refresh_round_seconds, settings.max_ops_per_round, rate
                    )
                except Exception as exc:
                    log(f"  FAILED {rate.name}: {type(exc).__name__}: {one_line(str(exc))}")
                    rate.skipped = f"failed: {exc}"
            plans = [(rate, steps) for rate, steps in plans if rate.skipped is None]
    return results


# --------------------------------------------------------------------------------------------
# Passwords: hashes/s and sign-ins/s


async def signin_rates(
    settings: ThroughputSettings, log: Callable[[str], None] = print
) -> list[Rate]:
    policy = PasswordConfig()
    label = (
        f"argon2id m={policy.argon2_memory_kib} KiB, t={policy.argon2_time_cost},"
        f" p={policy.argon2_parallelism}"
    )
    hashes = Rate("argon2id-hash", "hashes/s", f"PasswordHasher.hash in its pool ({label})")
    signins = Rate(
        f"password-sign-in-x{settings.signin_concurrency}",
        "sign-ins/s",
        f"Auth.sign_in_with_password, {settings.signin_concurrency} at once (SQLite)",
    )
    async with databases.opened_auth("sqlite") as opened:
        auth = opened.auth
        email = "bench@example.com"
        password = databases.PASSWORD

        async def hash_step() -> None:
            await auth.passwords.hash(password)

        async def signin_step() -> None:
            await auth.sign_in_with_password(email, password)

        plans = [
            (hashes, [hash_step] * settings.signin_concurrency),
            (signins, [signin_step] * settings.signin_concurrency),
        ]
        for round_index in range(settings.rounds):
            for rate, steps in plans[round_index % 2 :] + plans[: round_index % 2]:
                await parallel(steps, settings.hash_round_seconds, 10_000, rate)
    return [hashes, signins]


# --------------------------------------------------------------------------------------------
# Event-loop health during a sign-in storm


@dataclass
class Storm:
    name: str
    workers: int
    idle_latencies_s: list[float] = field(default_factory=list)
    storm_latencies_s: list[float] = field(default_factory=list)
    signins: int = 0
    storm_seconds: float = 0.0
    errors: int = 0
    skipped: str | None = None

    def p(self, storm: bool, fraction: float) -> float:
        return percentile(self.storm_latencies_s if storm else self.idle_latencies_s, fraction)

    @property
    def p99_ratio(self) -> float:
        idle = self.p(False, 0.99)
        return self.p(True, 0.99) / idle if idle > 0 else float("nan")


async def _probe(
    app: AuthMiddleware,
    cookie: str,
    stop: asyncio.Event,
    out: list[float],
    max_requests: int = 400_000,
) -> int:
    make_scope = http_scope("/me", host="localhost:8000", headers=[("cookie", cookie)])
    errors = 0
    clock = time.perf_counter
    while not stop.is_set() and len(out) < max_requests:
        started = clock()
        await asyncio.sleep(0)  # a request arriving now waits for whatever the loop is doing
        exchange = Exchange()
        scope = make_scope()
        scope["state"] = {}
        await app(scope, exchange.receive, exchange.send)
        out.append(clock() - started)
        if exchange.status != 200:
            errors += 1
    return errors


async def _storm_once(
    storm: Storm, settings: ThroughputSettings, workers: int | None, hash_only: bool = False
) -> None:
    config: dict[str, Any] = {}
    if workers is not None:
        config["password"] = PasswordConfig(hash_workers=workers)
    async with databases.opened_auth("sqlite", **config) as opened:
        auth = opened.auth
        app = authbridge_app.make_app(auth, first="/me")
        tokens = opened.signed_in.tokens
        cookie = f"authbridge.jwt={tokens.access.token}; authbridge.refresh={tokens.refresh_token}"
        email, password = "bench@example.com", databases.PASSWORD
        warm_up = asyncio.Event()
        warm_task = asyncio.create_task(_probe(app, cookie, warm_up, []))
        await asyncio.sleep(0.2)
        warm_up.set()
        storm.errors += await warm_task
        for _ in range(settings.storm_rounds):
            # idle
            stop = asyncio.Event()
            probe = asyncio.create_task(_probe(app, cookie, stop, storm.idle_latencies_s))
            await asyncio.sleep(settings.idle_seconds)
            stop.set()
            storm.errors += await probe
            # storm: sign-ins start first, the probe measures once they are all hashing
            stop = asyncio.Event()
            done = 0

            async def signer(stop: asyncio.Event = stop) -> None:
                nonlocal done
                while not stop.is_set():
                    if hash_only:
                        await auth.passwords.hash(password)
                    else:
                        await auth.sign_in_with_password(email, password)
                    done += 1

            signers = [asyncio.create_task(signer()) for _ in range(settings.storm)]
            await asyncio.sleep(0.05)
            probe = asyncio.create_task(_probe(app, cookie, stop, storm.storm_latencies_s))
            started = time.perf_counter()
            await asyncio.sleep(settings.storm_seconds)
            stop.set()
            storm.errors += await probe
            storm.storm_seconds += time.perf_counter() - started
            outcomes = await asyncio.wait_for(
                asyncio.gather(*signers, return_exceptions=True), timeout=30
            )
            storm.errors += sum(1 for o in outcomes if isinstance(o, BaseException))
            storm.signins += done


async def storm_results(
    settings: ThroughputSettings, log: Callable[[str], None] = print
) -> list[Storm]:
    from authbridge.passwords import default_hash_workers

    default_workers = PasswordConfig().hash_workers or default_hash_workers()
    runs: list[tuple[Storm, int | None, bool]] = [
        (Storm(f"storm-{settings.storm}-sign-ins", default_workers), None, False)
    ]
    variant = settings.storm_variant_workers
    if variant is not None:
        # Diagnostics: the same storm made of bare hashes (no database work on the loop), and
        # the sign-in storm with fewer hashing threads than cores.
        runs.append((Storm(f"storm-{settings.storm}-hashes-only", default_workers), None, True))
        if variant != default_workers:
            runs.append(
                (
                    Storm(f"storm-{settings.storm}-sign-ins-hash_workers={variant}", variant),
                    variant,
                    False,
                )
            )
    for storm, workers, hash_only in runs:
        try:
            await _storm_once(storm, settings, workers, hash_only)
        except Exception as exc:
            log(f"  FAILED {storm.name}: {type(exc).__name__}: {one_line(str(exc))}")
            storm.skipped = f"failed: {exc}"
    return [storm for storm, _, _ in runs]
