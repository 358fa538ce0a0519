"""Run the benchmarks: ``python -m bench [--quick] [--only SUBSTRING] ...``.

First the in-process table (ASGI apps called directly, interleaved rounds), then the loopback
table (uvicorn on 127.0.0.1 under a bounded keep-alive load).

To add scenarios, extend the source lists below; authbridge's own scenarios live in
``bench/authbridge_scenarios.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import TypeVar

from bench import authbridge_scenarios, baselines
from bench.harness import (
    MICRO,
    Scenario,
    Settings,
    format_results,
    harness_overhead_us,
    profile_scenario,
    run_inprocess,
)
from bench.loopback import LoadSettings, LoopbackScenario, format_load_results, run_loopback

# Extension point: every source is called once and its scenarios are run in this order.
INPROCESS_SOURCES: list[Callable[[], list[Scenario]]] = [
    baselines.scenarios,
    authbridge_scenarios.scenarios,
]
LOOPBACK_SOURCES: list[Callable[[], list[LoopbackScenario]]] = [
    baselines.loopback_scenarios,
    authbridge_scenarios.loopback_scenarios,
]

_PACKAGES = ("starlette", "fastapi", "uvicorn", "PyJWT", "cryptography", "authx", "fastapi-users")

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
    parser.add_argument(
        "--profile",
        metavar="SUBSTRING",
        help="profile the first matching in-process scenario with pyinstrument, then exit",
    )
    parser.add_argument("--list", action="store_true", help="list scenarios and exit")
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

    started = time.perf_counter()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(_versions())

    if not args.skip_inprocess:
        selected = _select(inprocess, args.only, args.baseline)
        overhead = await harness_overhead_us()
        print()
        print(
            f"In-process: {len(selected)} scenarios, {settings.rounds} interleaved rounds of"
            f" ~{settings.round_seconds:g} s each; per-round {MICRO}s/request"
        )
        results = await run_inprocess(selected, settings)
        print()
        print(format_results(results, args.baseline))
        print(
            f"(harness loop overhead ~{overhead:.2f} {MICRO}s/request, included in every row;"
            f" ratio = median / median of {args.baseline})"
        )

    if not args.skip_loopback:
        selected_load = _select(loopback, args.only, args.baseline)
        print()
        print(
            f"Loopback: uvicorn (1 worker, 127.0.0.1), {load_settings.concurrency} keep-alive"
            f" connections, at most {load_settings.max_requests} requests or"
            f" {load_settings.max_seconds:g} s per scenario"
        )
        load_results = await run_loopback(selected_load, load_settings)
        print()
        print(format_load_results(load_results, args.baseline))
        print(f"(ratio = req/s of {args.baseline} / req/s of the row)")

    print()
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(_main(_parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
