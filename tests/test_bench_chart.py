"""The benchmark's SVG chart: one row per target, coloured by the same verdict as the report,
well-formed, and with every label escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bench import targets
from bench.chart import ChartRow, chart_rows, targets_svg

SVG = "{http://www.w3.org/2000/svg}"


def figures(**rates: float) -> targets.Figures:
    cpu = {targets.BARE: 10.0, targets.WARM: 14.2, targets.ANONYMOUS: 12.4}
    return targets.Figures(
        inprocess=cpu,
        inprocess_cpu=cpu,
        loopback={},
        loopback_cpu={},
        rates=rates,
        storm_p99_ratio=2.77,
        growth_small="small",
        growth_large="large",
    )


def verdicts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [g.attrib["class"].split()[1] for g in root.iter(f"{SVG}g")]


def test_rows_follow_the_reports_verdicts() -> None:
    rows = chart_rows(figures(**{targets.REFRESH_SQLITE: 347.0}))
    assert [r.text for r in rows] == [t.text for t in targets.TARGETS]
    report = {
        text: verdict
        for verdict, text, _, _ in targets.evaluate(figures(**{targets.REFRESH_SQLITE: 347.0}))
    }
    assert {r.text: r.verdict for r in rows} == report


def test_the_svg_has_one_group_per_target_coloured_by_verdict() -> None:
    svg = targets_svg(chart_rows(figures(**{targets.REFRESH_SQLITE: 200.0})), title="run")
    drawn = verdicts(svg)
    assert len(drawn) == len(targets.TARGETS)
    assert drawn[0] == "pass"  # warm cookie 1.42x <= 1.5x
    assert drawn[1] == "miss"  # anonymous 1.24x > 1.15x
    assert drawn[-1] == "miss"  # refresh 200/s < 250/s
    assert "na" in drawn  # loopback not measured in these figures
    assert "1.42x PASS" in svg and "not measured" in svg


def test_labels_are_escaped() -> None:
    row = ChartRow("a <b> & c", 1.0, 2.0, False, "x")
    svg = targets_svg([row], title="<script>")
    root = ET.fromstring(svg)  # well-formed
    assert "<script>" not in svg and "a &lt;b&gt; &amp; c" in svg
    assert root.find(f"{SVG}title") is not None
