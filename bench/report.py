"""The report's text: one table printer, every table of ``python -m bench``, and the run's header.

The runners (``bench/runners/``) return plain results; this module is the only place that turns
them into text.  Every table goes through :func:`table` (fixed-width columns, two spaces apart, a
rule under the header) and marks what could not be measured with :func:`skipped_row`.  The SVG
chart of the targets is ``bench/chart.py``.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from collections.abc import Sequence
from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the runners import this module: only their types are needed here
    from bench.runners.growth import CleanupResult, PollResult
    from bench.runners.inprocess import Result
    from bench.runners.loopback import LoadResult
    from bench.runners.oauth import OAuthReport
    from bench.runners.throughput import Rate, Storm

MICRO = "\u00b5"
DASH = "\u2013"

PACKAGES = (
    "starlette", "fastapi", "uvicorn", "PyJWT", "cryptography", "SQLAlchemy", "aiosqlite",
    "asyncpg", "argon2-cffi", "Jinja2", "authx", "fastapi-users",
)  # fmt: skip
"""Versions printed in the report's header (the measured libraries and the baselines)."""


# --------------------------------------------------------------------------------------------
# Text helpers


def one_line(text: str, limit: int = 160) -> str:
    """``text`` on one line, cut to ``limit`` characters (for log lines and table cells)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def _us(value: float) -> str:
    """Three significant figures or so; ``-`` for NaN."""
    if value != value:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _num(value: float, digits: int = 0) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def _spread(values: Sequence[float], digits: int | None = None) -> str:
    """``min-max`` of ``values`` (with :func:`_us` precision unless ``digits`` is given)."""
    low, high = min(values), max(values)
    if digits is None:
        return f"{_us(low)}{DASH}{_us(high)}"
    return f"{_num(low, digits)}{DASH}{_num(high, digits)}"


# --------------------------------------------------------------------------------------------
# The one table printer


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: str,
    skipped: Sequence[tuple[str, str]] = (),
) -> str:
    """A fixed-width table: the header, a rule, the rows, then ``skipped:`` notes if any.

    ``align`` has one letter per column, ``l`` or ``r``; ``skipped`` holds ``(name, reason)``
    pairs listed under the table.

    Raises:
        ValueError: ``align`` or a row does not have one entry per column.
    """
    if len(align) != len(header) or any(len(row) != len(header) for row in rows):
        raise ValueError(f"every row and the alignment need {len(header)} columns")
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if side == "r" else cell.ljust(width)
            for cell, width, side in zip(cells, widths, align, strict=True)
        ).rstrip()

    lines = [line(header), "  ".join("-" * width for width in widths), *map(line, rows)]
    if skipped:
        lines += ["skipped:", *(f"  {name}: {one_line(reason)}" for name, reason in skipped)]
    return "\n".join(lines)


def skipped_row(
    lead: Sequence[str], width: int, reason: str | None = None, at: int | None = None
) -> list[str]:
    """A row for something not measured: ``lead`` cells, ``skipped``, then ``-`` up to ``width``.

    ``reason`` (shortened) goes in column ``at``, by default the one after ``skipped``.
    """
    row = [*lead, "skipped", *["-"] * (width - len(lead) - 1)]
    if reason is not None:
        row[len(lead) + 1 if at is None else at] = one_line(reason, 60)
    return row


# --------------------------------------------------------------------------------------------
# The tables


def inprocess_table(results: Sequence[Result], baseline: str | None) -> str:
    """Table [1]: µs/request (wall clock and process CPU) and the ratios to ``baseline``."""
    base = next((r for r in results if r.name == baseline and r.per_round_us), None)
    header = [
        "scenario",
        "req/round",
        f"median {MICRO}s/req",
        f"min{DASH}max {MICRO}s/req",
        f"x {baseline}" if base is not None else "ratio",
        f"CPU {MICRO}s/req",
        f"CPU min{DASH}max",
        "x (CPU)",
        "errors",
    ]
    rows: list[list[str]] = []
    skipped: list[tuple[str, str]] = []
    for r in results:
        if r.skipped is not None or not r.per_round_us:
            rows.append(skipped_row([r.name], len(header)))
            skipped.append((r.name, r.skipped or "not measured"))
            continue
        rows.append(
            [
                r.name,
                str(r.requests_per_round),
                _us(r.median_us),
                _spread(r.per_round_us),
                f"{r.median_us / base.median_us:.2f}" if base is not None else "-",
                _us(r.median_cpu_us),
                _spread(r.per_round_cpu_us),
                f"{r.median_cpu_us / base.median_cpu_us:.2f}" if base is not None else "-",
                str(r.errors),
            ]
        )
    return table(header, rows, "l" + "r" * 8, skipped)


def loopback_table(results: Sequence[LoadResult], baseline: str | None) -> str:
    """Table [2]: requests/s, latency and server CPU per scenario, share of ``baseline``."""
    base = next((r for r in results if r.name == baseline and r.completed), None)
    header = [
        "scenario",
        "requests",
        "median req/s",
        f"min{DASH}max req/s",
        "p50 ms",
        "p99 ms",
        f"server CPU {MICRO}s/req",
        "client CPU %",
        f"% of {baseline} req/s" if base is not None else "ratio",
        "errors",
    ]
    rows: list[list[str]] = []
    skipped: list[tuple[str, str]] = []
    for r in results:
        if r.skipped is not None or r.completed == 0:
            rows.append(skipped_row([r.name], len(header)))
            skipped.append((r.name, r.skipped or "no requests"))
            continue
        cpu = r.server_cpu_us_per_request
        rows.append(
            [
                r.name,
                str(r.completed),
                f"{r.rps:.0f}",
                _spread(r.per_round_rps, 0) if r.per_round_rps else "-",
                f"{r.percentile_ms(0.50):.2f}",
                f"{r.percentile_ms(0.99):.2f}",
                "-" if cpu is None else f"{cpu:.0f}",
                f"{100 * r.client_cpu_s / r.elapsed_s:.0f}",
                f"{100 * r.rps / base.rps:.0f} %" if base is not None and base.rps else "-",
                str(r.errors),
            ]
        )
    return table(header, rows, "l" + "r" * 9, skipped)


def rates_table(rates: Sequence[Rate]) -> str:
    """Table [3]: operations/s (median and spread over rounds) and per-operation latency."""
    header = [
        "measurement",
        "ops",
        "median /s",
        f"min{DASH}max /s",
        "p50 ms",
        "p99 ms",
        "errors",
        "what",
    ]
    rows: list[list[str]] = []
    for rate in rates:
        if rate.skipped is not None or not rate.per_round:
            rows.append(skipped_row([rate.name], 8, rate.skipped or "not measured", at=7))
            continue
        rows.append(
            [
                rate.name,
                str(rate.ops),
                f"{_num(rate.median)} {rate.unit.split('/')[0]}",
                _spread(rate.per_round, 0),
                _num(percentile(rate.latencies_s, 0.5) * 1e3, 2),
                _num(percentile(rate.latencies_s, 0.99) * 1e3, 2),
                str(rate.errors),
                rate.description,
            ]
        )
    return table(header, rows, "l" + "r" * 6 + "l")


def storms_table(storms: Sequence[Storm]) -> str:
    """Table [3], second part: the loop's latency idle and during each sign-in storm."""
    header = [
        "measurement",
        "hash threads",
        "phase",
        "requests",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "p99 / idle p99",
        "ops/s",
        "errors",
    ]
    rows: list[list[str]] = []
    for storm in storms:
        if storm.skipped is not None:
            rows.append(skipped_row([storm.name, str(storm.workers)], len(header)))
            continue
        for during in (False, True):
            values = storm.storm_latencies_s if during else storm.idle_latencies_s
            rate = storm.signins / storm.storm_seconds if during and storm.storm_seconds else None
            rows.append(
                [
                    "" if during else storm.name,
                    "" if during else str(storm.workers),
                    "storm" if during else "idle",
                    str(len(values)),
                    _num(storm.p(during, 0.5) * 1e3, 3),
                    _num(storm.p(during, 0.99) * 1e3, 3),
                    _num(storm.p(during, 0.999) * 1e3, 3),
                    _num(max(values) * 1e3 if values else float("nan"), 2),
                    f"{storm.p99_ratio:.2f}" if during else "1.00",
                    "-" if rate is None else _num(rate, 1),
                    str(storm.errors) if during else "",
                ]
            )
    return table(header, rows, "lll" + "r" * 8)


def _ms(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values) * 1e3:.2f} ({_spread([v * 1e3 for v in values], 2)})"


def polls_table(results: Sequence[PollResult]) -> str:
    """Table [4]: loading and polling the revocation set, by table size."""
    header = [
        "sessions + revocations",
        "bulk insert s",
        "set size",
        "Auth.open ms",
        f"poll after mass revocation ms (min{DASH}max)",
        f"steady poll ms (min{DASH}max)",
    ]
    rows: list[list[str]] = []
    for r in results:
        if r.skipped is not None:
            rows.append(skipped_row([str(r.size)], len(header), r.skipped))
            continue
        rows.append(
            [
                f"{r.size:,}",
                f"{r.insert_s:.1f}",
                f"{r.loaded:,}",
                f"{r.open_s * 1e3:.1f}",
                _ms(r.burst_poll_s),
                _ms(r.steady_poll_s),
            ]
        )
    return table(header, rows, "r" * 6)


def cleanups_table(results: Sequence[CleanupResult]) -> str:
    """Table [4], second part: ``Auth.cleanup()`` of expired sessions, by database."""
    header = [
        "database",
        "expired sessions",
        "bulk insert s",
        "Auth.cleanup s",
        "rows/s",
        "sessions deleted",
        "tokens deleted",
        "sessions left",
    ]
    rows: list[list[str]] = []
    for r in results:
        if r.skipped is not None:
            rows.append(skipped_row([r.backend, f"{r.size:,}"], len(header), r.skipped))
            continue
        deleted = r.sessions + r.refresh_tokens
        rows.append(
            [
                r.backend,
                f"{r.size:,}",
                f"{r.insert_s:.1f}",
                f"{r.cleanup_s:.2f}",
                f"{deleted / r.cleanup_s:,.0f}" if r.cleanup_s > 0 else "-",
                f"{r.sessions:,}",
                f"{r.refresh_tokens:,}",
                f"{r.left:,}",
            ]
        )
    return table(header, rows, "l" + "r" * 7)


def oauth_table(report: OAuthReport) -> str:
    """Table [4b]: the OAuth callback's own work, and JWKS fetches per cache period."""
    rows = [
        [
            t.label,
            str(t.count),
            f"{t.total_ms:.2f}",
            f"{t.idp_ms:.2f}",
            f"{t.own_ms:.2f}",
            f"{t.own_min_ms:.2f}-{t.own_max_ms:.2f}",
        ]
        for t in report.timings
    ]
    header = ["callback", "n", "total ms", "IdP wait ms", "own work ms", "own min-max"]
    return (
        f"{table(header, rows, 'l' + 'r' * 5)}\n"
        "(medians; own work = callback wall time - time waiting for the IdP)\n"
        f"JWKS fetched {report.jwks_fetches} time(s) for {report.sign_ins} sign-ins within its"
        f" max-age; {report.jwks_fetches_after_max_age} after the clock passed max-age"
    )


def targets_block(rows: Sequence[tuple[str, str, str, str]]) -> str:
    """Block [5]: one line per target from :func:`bench.targets.evaluate`."""
    width = max(len(r[1]) for r in rows)
    value_width = max(len(r[2]) for r in rows)
    return "\n".join(
        f"  {verdict:4}  {text.ljust(width)}  {value.rjust(value_width)}  ({basis})"
        for verdict, text, value, basis in rows
    )


# --------------------------------------------------------------------------------------------
# The run's header


def loadavg() -> str:
    """The 1, 5 and 15-minute load averages, or ``n/a``."""
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
        f" load average at start: {loadavg()}"
    )


def versions(packages: Sequence[str] = PACKAGES) -> str:
    """``name version`` of each installed package, ``name (missing)`` otherwise."""
    found = []
    for name in packages:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (missing)")
    return ", ".join(found)
