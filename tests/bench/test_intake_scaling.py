"""bench/intake's scaling summary reads the gateway's change across worker counts beside each
baseline's own change over the same counts (``bench/intake/report.py``)."""

from __future__ import annotations

from types import ModuleType

from tests.bench_modules import load_bench_module


def _report_module() -> ModuleType:
    return load_bench_module("intake/report.py")


def summary(gateway: float, dsig: float | None) -> dict[str, dict[str, float]]:
    figures = {"gateway": {"rate": gateway, "per_cpu_s": gateway}}
    if dsig is not None:
        figures["xsd+dsig"] = {"rate": dsig, "per_cpu_s": dsig}
    return figures


def test_each_baseline_measured_at_every_count_has_its_own_change_printed() -> None:
    report = _report_module()
    by_workers = {1: summary(400, 1600), 2: summary(380, 1520), 4: summary(300, 1200)}
    lines, within = report.scaling(by_workers, 0.15)
    assert within is False  # the gateway: 400 -> 300, 25 %
    assert "largest change 25%, NOT within 15%" in lines[-2]
    assert lines[-1].startswith("  the +dsig baseline beside it, same workers: +0%, -5%, -25% from the first count")
    assert "(largest change 25%)" in lines[-1]


def test_a_baseline_missing_at_a_count_is_not_summed_up() -> None:
    report = _report_module()
    lines, _ = report.scaling({1: summary(400, 1600), 4: summary(300, None)}, 0.15)
    assert not any("baseline beside it" in line for line in lines)
