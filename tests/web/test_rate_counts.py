"""Rate-limit counts in a SQLite file (``gateway+sqlite://``), shared by the embedded default's workers.

With several embedded workers, each counting sign-in and short-code failures in its own memory would
give an attacker one window per worker. ``gateway serve`` then keeps the counts in
``data/rate-limits.db``: every process, and every thread, counts in the same windows.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from gateway.cli.serve import shared_rate_counts
from gateway.grants.throttle import ShortCodeThrottle
from gateway.settings import Settings
from gateway.store.rate_counts import SqliteCounts

HIT_FROM_ANOTHER_PROCESS = """
import sys
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
import gateway.store.rate_counts
limiter = FixedWindowRateLimiter(storage_from_string(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    limiter.hit(parse("5 per minute"), "sign-in", "ada")
"""


def uri(tmp_path: Path) -> str:
    return f"gateway+sqlite://{tmp_path / 'rate-limits.db'}"


def test_counts_in_a_window_and_forgets_them_when_it_ends(tmp_path: Path) -> None:
    storage = storage_from_string(uri(tmp_path))
    assert isinstance(storage, SqliteCounts) and storage.check()
    assert [storage.incr("k", 1) for _ in range(3)] == [1, 2, 3]
    assert storage.get("k") == 3
    assert time.time() < storage.get_expiry("k") <= time.time() + 1
    time.sleep(1.05)
    assert storage.get("k") == 0
    assert storage.incr("k", 60, amount=2) == 2  # a new window, counted from its first hit
    storage.clear("k")
    assert storage.get("k") == 0
    storage.incr("a", 60)
    storage.incr("b", 60)
    assert storage.reset() == 2


def test_processes_count_in_the_same_window(tmp_path: Path) -> None:
    limiter = FixedWindowRateLimiter(storage_from_string(uri(tmp_path)))
    five = parse("5 per minute")
    for _ in range(2):
        assert limiter.hit(five, "sign-in", "ada")
    done = subprocess.run(
        [sys.executable, "-c", HIT_FROM_ANOTHER_PROCESS, uri(tmp_path), "3"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert not limiter.test(five, "sign-in", "ada"), "this process did not see the other's three failures"
    assert not limiter.hit(five, "sign-in", "ada")


def test_the_short_code_throttle_counts_in_the_shared_file(tmp_path: Path) -> None:
    first, second = (ShortCodeThrottle("2 per hour", uri(tmp_path)) for _ in range(2))
    first.failed("91110108500000006J", "203.0.113.9")
    second.failed("91110108500000006J", "198.51.100.1")
    assert not first.allows("91110108500000006J", "192.0.2.1")  # the verifier's two failures, from two workers


def test_a_relative_path_is_refused_with_the_form_expected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="absolute path"):
        SqliteCounts("gateway+sqlite://rate-limits.db")


def test_serve_shares_the_counts_of_several_embedded_workers_only(settings: Settings) -> None:
    assert shared_rate_counts(settings).rate_limit_storage == "memory://"  # one worker: its memory
    two = shared_rate_counts(settings.with_overrides(workers=2))
    assert two.rate_limit_storage == f"gateway+sqlite://{(settings.data_dir / 'rate-limits.db').resolve()}"
    redis = settings.with_overrides(workers=2, rate_limit_storage="redis://127.0.0.1:6379/1")
    assert shared_rate_counts(redis).rate_limit_storage == "redis://127.0.0.1:6379/1"  # the operator's choice
