"""The benchmark cannot rot: ``python -m bench --quick`` measures bare Starlette and the two warm
cookie scenarios in process (every row with its ratios, the target they feed, the report and the
chart written to a temporary directory, never bench/results/), and bare Starlette and one
authbridge server over loopback; the scenario lists, the servers' import strings and every table
of the report (skipped rows included) are checked without a run."""

from __future__ import annotations

import importlib
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench import report, scenarios, targets
from bench.__main__ import main as bench_main
from bench.report import DASH
from bench.runners.growth import CleanupResult, PollResult
from bench.runners.inprocess import Result
from bench.runners.loopback import LoadResult
from bench.runners.oauth import CallbackTiming, OAuthReport
from bench.runners.throughput import Rate, Storm
from bench.scenarios import authbridge_app
from bench.scenarios.authbridge_requests import GROWTH_SIZES, growth_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SMOKE_TIMEOUT_S = 120
"""Each run takes 3-8 s on a 2-core machine; the bound is for a very loaded one."""
SCENARIOS = ["starlette-bare", "authbridge-cookie-warm", "authbridge-cookie-warm-reads-auth"]
LOOPBACK_SCENARIOS = ["starlette-bare", "authbridge-cookie-warm-reads-auth"]
SVG = "{http://www.w3.org/2000/svg}"


def _snapshot(directory: Path) -> dict[str, int]:
    if not directory.is_dir():
        return {}
    return {path.name: path.stat().st_mtime_ns for path in directory.iterdir()}


def run_bench(*options: str) -> str:
    """``python -m bench OPTIONS`` in a subprocess; its stdout (exit code 0 asserted)."""
    python_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    before = _snapshot(RESULTS)
    result = subprocess.run(
        [sys.executable, "-m", "bench", *options],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": python_path},
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert _snapshot(RESULTS) == before, "the run wrote to bench/results/"
    return result.stdout


QUICK = ("--quick", "--rounds", "1", "--skip-throughput", "--skip-growth", "--skip-oauth")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """In process: bare Starlette and both warm cookie scenarios; ``(stdout, --out directory)``."""
    out = tmp_path_factory.mktemp("bench")
    return run_bench(*QUICK, "--skip-loopback", "--only", "cookie-warm", "--out", str(out)), out


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Over loopback: bare Starlette and authbridge's warm cookie request reading the user id."""
    out = tmp_path_factory.mktemp("bench")
    return run_bench(*QUICK, "--skip-inprocess", "--only", LOOPBACK_SCENARIOS[1], "--out", str(out))


def section(text: str, heading: str) -> str:
    """The part of the report from the line starting with ``heading`` to the next ``[n]``."""
    start = text.index("\n" + heading) + 1
    following = re.search(r"^\[\d", text[start + 1 :], re.M)
    return text[start : start + 1 + following.start()] if following else text[start:]


def parse_table(text: str) -> list[dict[str, str]]:
    """The rows of the first table in ``text``, as ``{header: cell}`` (columns from the rule)."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if re.fullmatch(r"-+(  -+)*", line))
    spans = [m.span() for m in re.finditer(r"-+", lines[rule])]

    def cells(line: str) -> list[str]:
        padded = line.ljust(spans[-1][1])
        return [padded[a:b].strip() for a, b in spans[:-1]] + [padded[spans[-1][0] :].strip()]

    header = cells(lines[rule - 1])
    rows = []
    for line in lines[rule + 1 :]:
        if not line.strip() or line.startswith(("(", "skipped:")):
            break
        rows.append(dict(zip(header, cells(line), strict=True)))
    return rows


def number(cell: str) -> float:
    value = float(cell.rstrip(" %x"))
    assert math.isfinite(value) and value > 0, cell
    return value


# --------------------------------------------------------------------------------------------
# The smoke run


def test_the_smoke_run_measures_every_selected_scenario(smoke: tuple[str, Path]) -> None:
    stdout, _ = smoke
    assert "FAILED" not in stdout and "skipped" not in stdout
    rows = parse_table(section(stdout, "[1] In-process"))
    assert [row["scenario"] for row in rows] == SCENARIOS
    for row in rows:
        number(row["median µs/req"])
        number(row["CPU µs/req"])
        assert row["errors"] == "0", row
    assert rows[0]["x starlette-bare"] == rows[0]["x (CPU)"] == "1.00"
    for row in rows[1:]:
        number(row["x starlette-bare"])
        number(row["x (CPU)"])


def test_the_loopback_run_loads_each_server_and_compares_it_with_bare(loopback: str) -> None:
    assert "FAILED" not in loopback and "skipped" not in loopback
    rows = parse_table(section(loopback, "[2] Loopback"))
    assert [row["scenario"] for row in rows] == LOOPBACK_SCENARIOS
    for row in rows:
        number(row["median req/s"])
        number(row["server CPU µs/req"])
        assert re.fullmatch(r"\d+ %", row["% of starlette-bare req/s"]), row
        assert row["errors"] == "0", row
    assert rows[0]["% of starlette-bare req/s"] == "100 %"


def test_the_smoke_run_evaluates_the_targets_it_measured(smoke: tuple[str, Path]) -> None:
    stdout, _ = smoke
    lines = section(stdout, "[5] Targets").splitlines()[1:]
    verdicts = {t.text: line for t in targets.TARGETS for line in lines if t.text in line}
    assert list(verdicts) == [t.text for t in targets.TARGETS]
    warm = verdicts["warm cookie request <= 1.5x bare Starlette"]
    assert re.match(r"\s+(PASS|MISS)\s.*\s\d+\.\d\dx\s+\(CPU authbridge-cookie-warm /", warm)
    assert "n/a" in verdicts["loopback authenticated req/s >= 85% of bare"]


def test_the_report_and_the_chart_go_to_the_out_directory(smoke: tuple[str, Path]) -> None:
    stdout, out = smoke
    assert f"wrote {out / 'report.txt'} and {out / 'ratios.svg'}" in stdout
    assert (out / "report.txt").read_text(encoding="utf-8") == stdout
    root = ET.fromstring((out / "ratios.svg").read_text(encoding="utf-8"))
    drawn = [g.attrib["class"].split()[1] for g in root.iter(f"{SVG}g")]
    assert len(drawn) == len(targets.TARGETS)
    assert drawn[0] in ("pass", "miss") and drawn[-1] == "na"


def test_list_names_every_scenario_and_its_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["--list"]) == 0
    listed = [line.split()[:3] for line in capsys.readouterr().out.splitlines()]
    assert [words[1] for words in listed if words[0] == "in-process"] == [
        scenario.name for scenario in scenarios.inprocess()
    ]
    server = f"{authbridge_app.__name__}:app_from_env"
    assert ["loopback", targets.WARM, server] in listed


def test_the_targets_read_scenarios_that_exist() -> None:
    inprocess = {scenario.name for scenario in scenarios.inprocess()}
    loopback = {scenario.name for scenario in scenarios.loopback()}
    read = {targets.BARE, targets.WARM, targets.WARM_READS_AUTH, targets.ANONYMOUS}
    read |= {targets.PYJWT, targets.FASTAPI_USERS}
    read |= {growth_name(min(GROWTH_SIZES)), growth_name(max(GROWTH_SIZES))}
    assert read - inprocess == set()
    assert {targets.BARE, targets.BARE_SAME_REQUEST, targets.WARM} - loopback == set()


def test_every_server_of_the_loopback_runner_is_importable() -> None:
    for scenario in scenarios.loopback():
        module, _, attribute = scenario.target.partition(":")
        assert callable(getattr(importlib.import_module(module), attribute)), scenario.target


# --------------------------------------------------------------------------------------------
# Every table of the report, from hand-made results


def test_the_inprocess_table_shows_ratios_to_the_baseline_and_lists_skipped_rows() -> None:
    results = [
        Result("starlette-bare", requests_per_round=100, per_round_us=[10.0, 9.0, 11.0]),
        Result("authbridge-x", requests_per_round=80, per_round_us=[14.0, 15.0, 12.5]),
        Result("fastapi-users-y", skipped="fastapi-users not importable"),
    ]
    results[0].per_round_cpu_us = [8.0, 8.0, 9.0]
    results[1].per_round_cpu_us = [12.0, 12.0, 13.0]
    text = report.inprocess_table(results, "starlette-bare")
    rows = parse_table(text)
    assert [r["x starlette-bare"] for r in rows] == ["1.00", "1.40", "-"]
    assert [r["x (CPU)"] for r in rows] == ["1.00", "1.50", "-"]
    assert rows[1][f"min{DASH}max µs/req"] == f"12.5{DASH}15.0"
    assert rows[2]["req/round"] == "skipped"
    assert text.endswith("skipped:\n  fastapi-users-y: fastapi-users not importable")


def test_the_loopback_table_shows_the_share_of_the_baseline() -> None:
    base = LoadResult("starlette-bare", completed=4000, elapsed_s=2.0, per_round_rps=[2000.0])
    base.latencies_ns = [1_000_000] * 99 + [9_000_000]
    base.server_cpu_s, base.client_cpu_s = 0.4, 0.2
    other = LoadResult("authbridge", completed=3000, elapsed_s=2.0, per_round_rps=[1500.0, 1700.0])
    rows = parse_table(report.loopback_table([base, other, LoadResult("gone")], "starlette-bare"))
    assert rows[0]["% of starlette-bare req/s"] == "100 %"
    assert rows[0]["p99 ms"] == "1.00" and rows[0]["server CPU µs/req"] == "100"
    assert rows[1]["% of starlette-bare req/s"] == "80 %"
    assert (
        rows[1][f"min{DASH}max req/s"] == f"1500{DASH}1700" and rows[1]["server CPU µs/req"] == "-"
    )
    assert rows[2]["requests"] == "skipped"


def test_the_throughput_tables_show_rates_and_the_storm_phases() -> None:
    refresh = Rate("refresh-sqlite-sequential", "refreshes/s", "chain", [300.0, 350.0], [0.003])
    refresh.ops = 650
    rates = [refresh, Rate("refresh-postgresql-x8", "refreshes/s", skipped="no server")]
    rows = parse_table(report.rates_table(rates))
    assert rows[0]["median /s"] == "325 refreshes" and rows[0]["p50 ms"] == "3.00"
    assert rows[1]["ops"] == "skipped" and rows[1]["what"] == "no server"

    storm = Storm("storm-8-sign-ins", 2, [0.001] * 10, [0.002] * 10, signins=9, storm_seconds=1.0)
    rows = parse_table(report.storms_table([storm, Storm("storm-x", 1, skipped="failed")]))
    assert [r["phase"] for r in rows] == ["idle", "storm", "skipped"]
    assert rows[1]["p99 / idle p99"] == "2.00" and rows[1]["ops/s"] == "9.0"


def test_the_growth_and_oauth_tables() -> None:
    poll = PollResult(1000, loaded=1000, open_s=0.05, insert_s=0.2)
    poll.burst_poll_s, poll.steady_poll_s = [0.002, 0.001, 0.003], [0.001]
    rows = parse_table(report.polls_table([poll, PollResult(10_000, skipped="disk full")]))
    assert rows[0][f"poll after mass revocation ms (min{DASH}max)"] == f"2.00 (1.00{DASH}3.00)"
    assert rows[1]["bulk insert s"] == "skipped" and rows[1]["set size"] == "disk full"

    done = CleanupResult("sqlite", 100_000, 1.5, 2.0, 100_000, 100_000, 1)
    rows = parse_table(report.cleanups_table([done, CleanupResult("postgresql", 5, skipped="x")]))
    assert rows[0]["rows/s"] == "100,000" and rows[1]["bulk insert s"] == "skipped"

    timing = CallbackTiming("new user", 20, 23.2, 6.7, 16.5, 13.5, 26.8)
    text = report.oauth_table(OAuthReport([timing], 40, 1, 2))
    assert parse_table(text)[0]["own min-max"] == "13.50-26.80"
    assert text.endswith("40 sign-ins within its max-age; 2 after the clock passed max-age")


def test_the_table_printer_refuses_ragged_rows() -> None:
    with pytest.raises(ValueError, match="2 columns"):
        report.table(["a", "b"], [["1"]], "lr")
