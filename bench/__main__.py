"""Run the benchmarks: ``python -m bench [--quick] [--only SUBSTRING] ...``.

1. In-process table: ASGI apps called directly, interleaved rounds, median and min-max
   µs/request, ratio to bare Starlette measured in the same rounds.
2. Loopback table: uvicorn (one worker) on 127.0.0.1 under a bounded keep-alive load, all servers
   up at once and loaded in interleaved rounds.
3. Throughput: refresh rotations/s (SQLite, PostgreSQL), argon2id hashes/s and sign-ins/s, and
   the event loop's health (p99 of a warm request) during a sign-in storm; email code sends/s and
   code sign-ins/s (SQLite, PostgreSQL; ``bench/email_codes.py``).
4. Growth: revocation-set load/poll cost with 1k-100k rows, ``Auth.cleanup`` of 100k sessions.
4b. OAuth: the callback's own work without the IdP's round trips; JWKS fetches per cache period.
5. Targets: PASS/MISS from this run's ratios (informational; the exit code is 0).

The report is printed and also written to ``bench/results/report.txt``, next to
``bench/results/ratios.svg``, a chart of the targets' ratios (``--out DIR`` to write elsewhere).

To add scenarios, extend the source lists below; authbridge's own scenarios live in
``bench/authbridge_scenarios.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TextIO, TypeVar

from bench import (
    authbridge_scenarios,
    baselines,
    chart,
    email_codes,
    growth,
    oauth,
    targets,
    throughput,
)
from bench.harness import (
    DASH,
    MICRO,
    Result,
    Scenario,
    Settings,
    format_results,
    harness_overhead_us,
    profile_scenario,
    run_inprocess,
)
from bench.loopback import (
    LoadResult,
    LoadSettings,
    LoopbackScenario,
    format_load_results,
    run_loopback,
)

# Extension point: every source is called once and its scenarios are run in this order.
INPROCESS_SOURCES: list[Callable[[], list[Scenario]]] = [
    baselines.scenarios,
    authbridge_scenarios.scenarios,
]
LOOPBACK_SOURCES: list[Callable[[], list[LoopbackScenario]]] = [
    baselines.loopback_scenarios,
    authbridge_scenarios.loopback_scenarios,
]

_PACKAGES = (
    "starlette", "fastapi", "uvicorn", "PyJWT", "cryptography", "SQLAlchemy", "aiosqlite",
    "asyncpg", "argon2-cffi", "Jinja2", "authx", "fastapi-users",
)  # fmt: skip
THROUGHPUT_WORDS = (
    "throughput", "refresh", "sign-in", "signin", "storm", "argon2", "hash", "codes", "email",
)  # fmt: skip
GROWTH_WORDS = ("growth", "cleanup", "revocation", "poll", "sessions")
OAUTH_WORDS = ("oauth", "callback", "jwks")

Named = TypeVar("Named", Scenario, LoopbackScenario)


def _select(items: Sequence[Named], only: Sequence[str], baseline: str) -> list[Named]:
    """Scenarios matching any ``--only`` substring; the baseline is always kept for ratios."""
    if not only:
        return list(items)
    return [
        item
        for item in items
        if item.name == baseline or any(sub.lower() in item.name.lower() for sub in only)
    ]


def _versions() -> str:
    found = []
    for name in _PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (missing)")
    return ", ".join(found)


RESULTS = Path(__file__).resolve().parent / "results"


class _Tee(io.TextIOBase):
    """Print as usual and keep a copy of the report."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        return self.copy.write(text)

    def flush(self) -> None:
        self.stream.flush()


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer/shorter rounds and loads")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SUBSTRING",
        help="run only scenarios whose name contains SUBSTRING (repeatable; baseline kept)",
    )
    parser.add_argument("--baseline", default=baselines.BASELINE, help="1.0x reference scenario")
    parser.add_argument("--rounds", type=int, help="override the number of interleaved rounds")
    parser.add_argument("--skip-inprocess", action="store_true")
    parser.add_argument("--skip-loopback", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-growth", action="store_true")
    parser.add_argument("--skip-oauth", action="store_true")
    parser.add_argument(
        "--profile",
        metavar="SUBSTRING",
        help="profile the first matching in-process scenario with pyinstrument, then exit",
    )
    parser.add_argument("--list", action="store_true", help="list scenarios and exit")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        metavar="DIR",
        help=f"write report.txt and ratios.svg here (default {RESULTS})",
    )
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> int:
    inprocess = [s for source in INPROCESS_SOURCES for s in source()]
    loopback = [s for source in LOOPBACK_SOURCES for s in source()]

    if args.list:
        for scenario in inprocess:
            print(f"in-process  {scenario.name:40} {scenario.description}")
        for item in loopback:
            print(f"loopback    {item.name:40} {item.target}")
        return 0

    if args.profile:
        match = [s for s in inprocess if args.profile.lower() in s.name.lower()]
        if not match:
            print(f"no in-process scenario matches {args.profile!r}", file=sys.stderr)
            return 2
        print(await profile_scenario(match[0]))
        return 0

    settings = Settings.quick() if args.quick else Settings()
    if args.rounds:
        settings = dataclasses.replace(settings, rounds=max(1, args.rounds))
    load_settings = LoadSettings.quick() if args.quick else LoadSettings()
    tp_settings = (
        throughput.ThroughputSettings.quick() if args.quick else throughput.ThroughputSettings()
    )
    growth_settings = growth.GrowthSettings.quick() if args.quick else growth.GrowthSettings()

    def wanted(words: Sequence[str]) -> bool:
        return not args.only or any(
            sub.lower() in word or word in sub.lower() for sub in args.only for word in words
        )

    started = time.perf_counter()
    print(machine_description())
    print(_versions())

    results: list[Result] = []
    load_results: list[LoadResult] = []
    rates: list[throughput.Rate] = []
    storms: list[throughput.Storm] = []

    if not args.skip_inprocess:
        selected = _select(inprocess, args.only, args.baseline)
        overhead = await harness_overhead_us()
        print()
        print(
            f"[1] In-process: {len(selected)} scenarios, {settings.rounds} interleaved rounds of"
            f" ~{settings.round_seconds:g} s each; per-round {MICRO}s/request"
        )
        results = await run_inprocess(selected, settings)
        print()
        print(format_results(results, args.baseline))
        print(
            f"(wall clock and process CPU time per request, median and min{DASH}max over the"
            f" rounds; x = median / median of {args.baseline}. Harness loop overhead"
            f" ~{overhead:.2f} {MICRO}s/request, included in every row.)"
        )

    if not args.skip_loopback:
        selected_load = _select(loopback, args.only, args.baseline)
        print()
        print(
            f"[2] Loopback: uvicorn (1 worker, 127.0.0.1), {load_settings.concurrency} keep-alive"
            f" connections, {load_settings.rounds} interleaved rounds of at most"
            f" {load_settings.max_requests // load_settings.rounds} requests or"
            f" {load_settings.max_seconds / load_settings.rounds:g} s per scenario"
        )
        load_results = await run_loopback(selected_load, load_settings)
        print()
        print(format_load_results(load_results, args.baseline))
        print(
            "(median req/s over the rounds; p50/p99 over all requests; server CPU from"
            " /proc, per request)"
        )

    if not args.skip_throughput and wanted(THROUGHPUT_WORDS):
        print()
        print(
            f"[3] Throughput: {tp_settings.rounds} interleaved rounds of"
            f" ~{tp_settings.refresh_round_seconds:g} s (refresh) /"
            f" ~{tp_settings.hash_round_seconds:g} s (hashing) each"
        )
        if wanted(("throughput", "refresh")):
            rates += await throughput.refresh_rates(tp_settings)
        if wanted(("throughput", "sign-in", "signin", "argon2", "hash")):
            rates += await throughput.signin_rates(tp_settings)
        if wanted(("throughput", "codes", "email")):
            rates += await email_codes.code_rates(tp_settings)
        if rates:
            print()
            print(throughput.format_rates(rates))
        if wanted(("throughput", "storm")):
            storms = await throughput.storm_results(tp_settings)
            print()
            print(
                "Event loop during a sign-in storm: warm GET /me back to back on the loop"
                f" serving {tp_settings.storm} concurrent sign-ins; {tp_settings.storm_rounds} x"
                f" ({tp_settings.idle_seconds:g} s idle, {tp_settings.storm_seconds:g} s storm)"
            )
            print(throughput.format_storms(storms))

    if not args.skip_growth and wanted(GROWTH_WORDS):
        print()
        print("[4] Growth: revocation set (SQLite) and cleanup")
        polls = await growth.revocation_growth(growth_settings)
        print()
        print(growth.format_polls(polls))
        cleanups = await growth.cleanup_growth(growth_settings)
        print()
        print(growth.format_cleanups(cleanups))
        print(
            "(per-request cost with these table sizes: the authbridge-warm-*-sessions rows"
            " of table [1])"
        )

    if not args.skip_oauth and wanted(OAUTH_WORDS):
        print()
        print("[4b] OAuth callback (stand-in OpenID provider on 127.0.0.1, SQLite)")
        report = await oauth.run(sign_ins=20 if args.quick else 60)
        print()
        print(oauth.format_report(report))

    sizes = authbridge_scenarios.GROWTH_SIZES
    figures = targets.collect(
        results,
        load_results,
        rates,
        storms,
        authbridge_scenarios.growth_name(min(sizes)),
        authbridge_scenarios.growth_name(max(sizes)),
    )
    print()
    print("[5] Targets (from this run's ratios; informational, exit code 0)")
    print(targets.format_targets(targets.evaluate(figures)))
    print()
    print(f"load average at the end: {_loadavg()}; total {time.perf_counter() - started:.1f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    title = f"authbridge targets, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    (args.out / "ratios.svg").write_text(
        chart.targets_svg(chart.chart_rows(figures), title=title), encoding="utf-8"
    )
    print(f"wrote {args.out / 'report.txt'} and {args.out / 'ratios.svg'}")
    return 0


def _loadavg() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine_description() -> str:
    """CPU model, cores, memory, kernel, Python, and the load when the run started."""
    model = platform.processor() or platform.machine()
    memory = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as handle:
            kib = int(handle.readline().split()[1])
            memory = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{model}, {os.cpu_count()} CPUs{memory}; {platform.system()} {platform.release()};"
        f" Python {platform.python_version()} ({platform.python_implementation()});"
        f" load average at start: {_loadavg()}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.list or args.profile:
        return asyncio.run(_main(args))
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        status = asyncio.run(_main(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.txt").write_text(tee.copy.getvalue(), encoding="utf-8")
    return status


if __name__ == "__main__":
    sys.exit(main())
