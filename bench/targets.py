"""The performance targets, evaluated from the ratios of one run (never absolute timings).

Each target compares two figures measured in the same run, under the same machine noise, so a
PASS/MISS does not depend on how fast this particular machine is.  The block is informational:
``python -m bench`` always exits 0.

The limits are the project's goals, set from the measurements in DESIGN §16 (bare Starlette
≈ 9 µs per in-process request, PyJWT's ES256 decode ≈ 109 µs, a warm request through the
verify-once cache ≈ 1.3x bare, over loopback ≈ 0.9x the bare app's requests/s) with some
headroom; the refresh rate and sign-in storm limits are goals of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.runners.inprocess import Result
    from bench.runners.loopback import LoadResult
    from bench.runners.throughput import Rate, Storm

BARE = "starlette-bare"
WARM = "authbridge-cookie-warm"
WARM_READS_AUTH = "authbridge-cookie-warm-reads-auth"
BARE_SAME_REQUEST = "starlette-bare-same-cookies"
ANONYMOUS = "authbridge-anonymous"
PYJWT = "starlette-authmw-pyjwt-es256"
FASTAPI_USERS = "fastapi-users-jwt-es256"
REFRESH_SQLITE = "refresh-sqlite-sequential"


@dataclass
class Figures:
    """Everything the targets read; missing entries make a target ``n/a``."""

    inprocess: Mapping[str, float]
    """Median µs/request by scenario name."""
    inprocess_cpu: Mapping[str, float]
    """Median process-CPU µs/request by scenario name (shown next to the wall-clock ratio)."""
    loopback: Mapping[str, float]
    """Median requests/s by scenario name."""
    loopback_cpu: Mapping[str, float]
    """Server CPU µs/request by scenario name (shown alongside)."""
    rates: Mapping[str, float]
    """Median ops/s by measurement name."""
    storm_p99_ratio: float | None
    growth_small: str
    growth_large: str


@dataclass(frozen=True)
class Target:
    text: str
    limit: float
    higher_is_better: bool
    unit: str
    compute: Callable[[Figures], tuple[float, str] | None]
    """Returns ``(value, how it was computed)`` or None when a figure is missing."""


def _ratio(table: Mapping[str, float], top: str, bottom: str) -> tuple[float, str] | None:
    if top not in table or bottom not in table or table[bottom] <= 0:
        return None
    return table[top] / table[bottom], f"{top} / {bottom}"


def _inprocess(f: Figures, top: str, bottom: str) -> tuple[float, str] | None:
    """Ratio of the median CPU time per request; the wall-clock ratio is reported alongside.

    CPU time (all threads of this process) does not count the time the process spends
    descheduled while other programs use the cores, so on a shared machine it is the stabler
    measure of what a request costs.  On a quiet machine the two ratios agree.
    """
    found = _ratio(f.inprocess_cpu, top, bottom)
    if found is None:
        return None
    wall = _ratio(f.inprocess, top, bottom)
    return found[0], f"CPU {found[1]}" + (f"; wall-clock {wall[0]:.2f}x" if wall else "")


def _loopback_share(f: Figures) -> tuple[float, str] | None:
    """authbridge's req/s against the bare app serving the very same request (cookies included,
    which the server parses either way); the share against cookie-less bare requests and the
    server-CPU ratio are reported alongside."""
    base = BARE_SAME_REQUEST if BARE_SAME_REQUEST in f.loopback else BARE
    found = _ratio(f.loopback, WARM, base)
    if found is None:
        return None
    basis = f"req/s {WARM} / {base} (uvicorn)"
    cpu = _ratio(f.loopback_cpu, base, WARM)
    if cpu is not None:
        basis += f"; server CPU {100 * cpu[0]:.0f}%"
    plain = _ratio(f.loopback, WARM, BARE)
    if base != BARE and plain is not None:
        basis += f"; vs cookie-less {BARE}: {100 * plain[0]:.0f}%"
    return 100 * found[0], basis


def _storm(f: Figures) -> tuple[float, str] | None:
    if f.storm_p99_ratio is None or f.storm_p99_ratio != f.storm_p99_ratio:
        return None
    return f.storm_p99_ratio, "p99 of GET /me during the sign-in storm / idle p99"


def _refresh(f: Figures) -> tuple[float, str] | None:
    value = f.rates.get(REFRESH_SQLITE)
    if value is None or value != value:
        return None
    return value, f"{REFRESH_SQLITE}, median of rounds"


TARGETS: Sequence[Target] = (
    Target(
        "warm cookie request <= 1.5x bare Starlette",
        1.5,
        False,
        "x",
        lambda f: _inprocess(f, WARM, BARE),
    ),
    Target(
        "anonymous request <= 1.15x bare Starlette",
        1.15,
        False,
        "x",
        lambda f: _inprocess(f, ANONYMOUS, BARE),
    ),
    Target(
        ">= 8x cheaper than Starlette AuthenticationMiddleware + PyJWT (warm)",
        8,
        True,
        "x",
        lambda f: _inprocess(f, PYJWT, WARM_READS_AUTH),
    ),
    Target(
        ">= 30x cheaper than fastapi-users (warm)",
        30,
        True,
        "x",
        lambda f: _inprocess(f, FASTAPI_USERS, WARM_READS_AUTH),
    ),
    Target("loopback authenticated req/s >= 85% of bare", 85, True, "%", _loopback_share),
    Target(
        "100k-session warm verify <= 1.2x the 1k cost",
        1.2,
        False,
        "x",
        lambda f: _inprocess(f, f.growth_large, f.growth_small),
    ),
    Target("sign-in storm p99 <= 2x idle p99", 2.0, False, "x", _storm),
    Target("refresh >= 250/s on SQLite (sequential rotations)", 250, True, "/s", _refresh),
)


def collect(
    inprocess: Sequence[Result],
    loopback: Sequence[LoadResult],
    rates: Sequence[Rate],
    storms: Sequence[Storm],
    growth_small: str,
    growth_large: str,
) -> Figures:
    return Figures(
        inprocess={r.name: r.median_us for r in inprocess if r.per_round_us and not r.skipped},
        inprocess_cpu={
            r.name: r.median_cpu_us for r in inprocess if r.per_round_cpu_us and not r.skipped
        },
        loopback={r.name: r.rps for r in loopback if r.completed and not r.skipped},
        loopback_cpu={
            r.name: cpu
            for r in loopback
            if not r.skipped and (cpu := r.server_cpu_us_per_request) is not None
        },
        rates={r.name: r.median for r in rates if r.per_round and not r.skipped},
        storm_p99_ratio=next(
            (s.p99_ratio for s in storms if s.skipped is None and s.storm_latencies_s), None
        ),
        growth_small=growth_small,
        growth_large=growth_large,
    )


def evaluate(figures: Figures) -> list[tuple[str, str, str, str]]:
    """``(verdict, target, measured, basis)`` rows; verdict is PASS, MISS or n/a."""
    rows = []
    for target in TARGETS:
        found = target.compute(figures)
        if found is None:
            rows.append(("n/a", target.text, "-", "not measured in this run"))
            continue
        value, basis = found
        ok = value >= target.limit if target.higher_is_better else value <= target.limit
        shown = f"{value:.0f}{target.unit}" if target.unit != "x" else f"{value:.2f}x"
        rows.append(("PASS" if ok else "MISS", target.text, shown, basis))
    return rows
