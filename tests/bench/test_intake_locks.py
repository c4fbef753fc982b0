"""bench/intake's SQLite sampler sees the gateway's transaction lock (its flock) while it is held, and only then."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import text

from gateway.store import db
from gateway.store.db import connect
from tests.bench_modules import load_bench_module


def _locks_module() -> ModuleType:
    return load_bench_module("intake/locks.py")


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")
def test_the_sqlite_sampler_counts_the_gateways_transaction_lock_while_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "_ACROSS_PROCESSES", True)  # as in gateway serve
    locks = _locks_module()
    database = tmp_path / "gateway.db"
    engine = connect(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE marks (who TEXT)"))  # and WAL's -shm file with it
    sampler = locks.SqliteSampler(database)
    sampler._sample()  # nothing open
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO marks (who) VALUES ('a')"))
        sampler._sample()  # a transaction open: the flock held, the WAL write lock too
    sampler._sample()
    figures = sampler.figures
    assert figures.samples == 3
    assert figures.resources[locks.GATEWAY_LOCK] == 1
    assert figures.waited[locks.GATEWAY_LOCK] == 0  # nobody else wanted it
    assert figures.resources["SQLite write lock (WAL_WRITE_LOCK)"] == 1
    engine.dispose()
