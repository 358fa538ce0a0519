"""Run the benchmarks: ``python -m bench [--quick] [--only SUBSTRING] ...``.

1. In-process table: ASGI apps called directly, interleaved rounds, median and min-max
   µs/request, ratio to bare Starlette measured in the same rounds.
2. Loopback table: uvicorn (one worker) on 127.0.0.1 under a bounded keep-alive load, all servers
   up at once and loaded in interleaved rounds.
3. Throughput: refresh rotations/s (SQLite, PostgreSQL), argon2id hashes/s and sign-ins/s, and
   the event loop's health (p99 of a warm request) during a sign-in storm; email code sends/s and
   code sign-ins/s (SQLite, PostgreSQL).
4. Growth: revocation-set load/poll cost with 1k-100k rows, ``Auth.cleanup`` of 100k sessions.
4b. OAuth: the callback's own work without the IdP's round trips; JWKS fetches per cache period.
5. Targets: PASS/MISS from this run's ratios (informational; the exit code is 0).

The report is printed and also written to ``bench/results/report.txt``, next to
``bench/results/ratios.svg``, a chart of the targets' ratios (``--out DIR`` to write elsewhere).

What is measured lives in ``bench/scenarios/``, how in ``bench/runners/``, the text of the report
in ``bench/report.py``; this module only chooses what runs and in which order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO, TypeVar

from bench import chart, report, scenarios, targets
from bench.report import DASH, MICRO
from bench.runners import email_codes, growth, oauth, throughput
from bench.runners.inprocess import (
    Result,
    Scenario,
    Settings,
    harness_overhead_us,
    profile_scenario,
    run_inprocess,
)
from bench.runners.loopback import LoadResult, LoadSettings, LoopbackScenario, run_loopback
from bench.scenarios.authbridge_requests import GROWTH_SIZES, growth_name

RESULTS = Path(__file__).resolve().parent / "results"

# ``--only`` runs the sections below when a substring matches one of their words.
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


def _emit(*blocks: str) -> None:
    """A blank line, then ``blocks`` one under the other (every part of the report)."""
    print()
    for block in blocks:
        print(block)


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
    parser.add_argument("--baseline", default=scenarios.BASELINE, help="1.0x reference scenario")
    parser.add_argument(
        "--rounds",
        type=int,
        help="override the number of interleaved rounds (in-process, loopback, throughput)",
    )
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


@dataclasses.dataclass
class _Run:
    """What the sections measured, for the targets."""

    results: list[Result] = dataclasses.field(default_factory=list)
    load_results: list[LoadResult] = dataclasses.field(default_factory=list)
    rates: list[throughput.Rate] = dataclasses.field(default_factory=list)
    storms: list[throughput.Storm] = dataclasses.field(default_factory=list)


async def _inprocess(args: argparse.Namespace, run: _Run) -> None:
    settings = Settings.quick() if args.quick else Settings()
    if args.rounds:
        settings = dataclasses.replace(settings, rounds=max(1, args.rounds))
    selected = _select(scenarios.inprocess(), args.only, args.baseline)
    overhead = await harness_overhead_us()
    _emit(
        f"[1] In-process: {len(selected)} scenarios, {settings.rounds} interleaved rounds of"
        f" ~{settings.round_seconds:g} s each; per-round {MICRO}s/request"
    )
    run.results = await run_inprocess(selected, settings)
    _emit(
        report.inprocess_table(run.results, args.baseline),
        f"(wall clock and process CPU time per request, median and min{DASH}max over the"
        f" rounds; x = median / median of {args.baseline}. Harness loop overhead"
        f" ~{overhead:.2f} {MICRO}s/request, included in every row.)",
    )


async def _loopback(args: argparse.Namespace, run: _Run) -> None:
    settings = LoadSettings.quick() if args.quick else LoadSettings()
    if args.rounds:
        settings = dataclasses.replace(settings, rounds=max(1, args.rounds))
    selected = _select(scenarios.loopback(), args.only, args.baseline)
    _emit(
        f"[2] Loopback: uvicorn (1 worker, 127.0.0.1), {settings.concurrency} keep-alive"
        f" connections, {settings.rounds} interleaved rounds of at most"
        f" {settings.round_requests} requests or {settings.round_seconds:g} s per scenario"
    )
    run.load_results = await run_loopback(selected, settings)
    _emit(
        report.loopback_table(run.load_results, args.baseline),
        "(median req/s over the rounds; p50/p99 over all requests; server CPU from"
        " /proc, per request)",
    )


async def _throughput(args: argparse.Namespace, run: _Run) -> None:
    settings = (
        throughput.ThroughputSettings.quick() if args.quick else throughput.ThroughputSettings()
    )
    if args.rounds:
        settings = dataclasses.replace(settings, rounds=max(1, args.rounds))
    _emit(
        f"[3] Throughput: {settings.rounds} interleaved rounds of"
        f" ~{settings.refresh_round_seconds:g} s (refresh) /"
        f" ~{settings.hash_round_seconds:g} s (hashing) each"
    )
    if _wanted(args, ("throughput", "refresh")):
        run.rates += await throughput.refresh_rates(settings)
    if _wanted(args, ("throughput", "sign-in", "signin", "argon2", "hash")):
        run.rates += await throughput.signin_rates(settings)
    if _wanted(args, ("throughput", "codes", "email")):
        run.rates += await email_codes.code_rates(settings)
    if run.rates:
        _emit(report.rates_table(run.rates))
    if _wanted(args, ("throughput", "storm")):
        run.storms = await throughput.storm_results(settings)
        _emit(
            "Event loop during a sign-in storm: warm GET /me back to back on the loop serving"
            f" {settings.storm} concurrent sign-ins; {settings.storm_rounds} x"
            f" ({settings.idle_seconds:g} s idle, {settings.storm_seconds:g} s storm)",
            report.storms_table(run.storms),
        )


async def _growth(args: argparse.Namespace) -> None:
    settings = growth.GrowthSettings.quick() if args.quick else growth.GrowthSettings()
    _emit("[4] Growth: revocation set (SQLite) and cleanup")
    _emit(report.polls_table(await growth.revocation_growth(settings)))
    _emit(
        report.cleanups_table(await growth.cleanup_growth(settings)),
        "(per-request cost with these table sizes: the authbridge-warm-*-sessions rows"
        " of table [1])",
    )


async def _oauth(args: argparse.Namespace) -> None:
    _emit("[4b] OAuth callback (stand-in OpenID provider on 127.0.0.1, SQLite)")
    _emit(report.oauth_table(await oauth.run(sign_ins=20 if args.quick else 60)))


def _wanted(args: argparse.Namespace, words: Sequence[str]) -> bool:
    """Whether ``--only`` (if given) names one of ``words`` (or a word names an ``--only``)."""
    return not args.only or any(
        sub.lower() in word or word in sub.lower() for sub in args.only for word in words
    )


async def _main(args: argparse.Namespace) -> int:
    if args.list:
        for scenario in scenarios.inprocess():
            print(f"in-process  {scenario.name:40} {scenario.description}")
        for item in scenarios.loopback():
            print(f"loopback    {item.name:40} {item.target}")
        return 0

    if args.profile:
        match = [s for s in scenarios.inprocess() if args.profile.lower() in s.name.lower()]
        if not match:
            print(f"no in-process scenario matches {args.profile!r}", file=sys.stderr)
            return 2
        print(await profile_scenario(match[0]))
        return 0

    started = time.perf_counter()
    print(report.machine_description())
    print(report.versions())
    run = _Run()
    if not args.skip_inprocess:
        await _inprocess(args, run)
    if not args.skip_loopback:
        await _loopback(args, run)
    if not args.skip_throughput and _wanted(args, THROUGHPUT_WORDS):
        await _throughput(args, run)
    if not args.skip_growth and _wanted(args, GROWTH_WORDS):
        await _growth(args)
    if not args.skip_oauth and _wanted(args, OAUTH_WORDS):
        await _oauth(args)

    figures = targets.collect(
        run.results,
        run.load_results,
        run.rates,
        run.storms,
        growth_name(min(GROWTH_SIZES)),
        growth_name(max(GROWTH_SIZES)),
    )
    _emit(
        "[5] Targets (from this run's ratios; informational, exit code 0)",
        report.targets_block(targets.evaluate(figures)),
    )
    _emit(
        f"load average at the end: {report.loadavg()}; total {time.perf_counter() - started:.1f} s"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    title = f"authbridge targets, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    (args.out / "ratios.svg").write_text(
        chart.targets_svg(chart.chart_rows(figures), title=title), encoding="utf-8"
    )
    print(f"wrote {args.out / 'report.txt'} and {args.out / 'ratios.svg'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark with ``argv`` (default: the command line); returns the exit code."""
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
