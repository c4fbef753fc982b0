"""bench/intake's ``--connections-per-worker``: each worker count gets that many connections a worker."""

from __future__ import annotations

import pytest

from tests.bench_modules import load_bench_module


def test_each_worker_count_gets_its_connections() -> None:
    options = load_bench_module("intake/options.py")
    parsed = options.parse_options(["--connections-per-worker", "16", "--workers", "1,2,4"])
    assert [parsed.for_workers(workers).connections for workers in (1, 2, 4)] == [16, 32, 64]
    assert parsed.connections == 64  # what the envelopes are counted for


def test_without_it_every_count_shares_the_connections() -> None:
    options = load_bench_module("intake/options.py")
    parsed = options.parse_options(["--workers", "1,4"])
    assert parsed.for_workers(4).connections == parsed.for_workers(1).connections == 16


@pytest.mark.parametrize("extra", [["--connections", "8"], ["--rate", "100"]])
def test_it_is_for_the_closed_loop_instead_of_connections(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    options = load_bench_module("intake/options.py")
    with pytest.raises(SystemExit):
        options.parse_options(["--connections-per-worker", "16", *extra])
    assert "--connections-per-worker is for the closed loop" in capsys.readouterr().err
