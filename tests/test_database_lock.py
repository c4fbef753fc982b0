"""SQLite transactions take turns across processes (``gateway.store.db.DatabaseLock``).

Several ``gateway serve`` workers on the embedded default share one SQLite file. A transaction holds
the process's lock of that file and an ``flock`` beside it from its first statement to its end, so
another process's transaction waits for it instead of sleeping in SQLite's busy handler (or, for a
read, not waiting at all and later failing to write on a stale snapshot).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.store import db
from gateway.store.db import DatabaseLock, connect, database_turn


@pytest.fixture(autouse=True)
def across_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the processes of ``gateway serve`` (``take_turns_across_processes``)."""
    monkeypatch.setattr(db, "_ACROSS_PROCESSES", True)


HOLDER = """
import sys, time
from pathlib import Path
from sqlalchemy import text
from gateway.store.db import connect, take_turns_across_processes
take_turns_across_processes()  # as gateway serve does
database, held, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
engine = connect(f"sqlite:///{database}")
with engine.begin() as connection:
    connection.execute(text("SELECT 1"))
    held.touch()
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    connection.execute(text("INSERT INTO marks (who) VALUES ('holder')"))
"""


def test_a_transaction_of_another_process_waits_until_the_first_ends(tmp_path: Path) -> None:
    database = tmp_path / "gateway.db"
    engine = connect(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE marks (who TEXT)"))
    held, go = tmp_path / "held", tmp_path / "go"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(database), str(held), str(go)])
    try:
        deadline = time.monotonic() + 30
        while not held.exists():
            assert holder.poll() is None, "the holding process ended early"
            assert time.monotonic() < deadline, "the holding process never began its transaction"
            time.sleep(0.01)
        entered = threading.Event()

        def second() -> None:
            with engine.begin() as connection:  # a read first: WAL alone would let it through at once
                entered.set()
                connection.execute(text("INSERT INTO marks (who) VALUES ('second')"))

        thread = threading.Thread(target=second)
        thread.start()
        assert not entered.wait(0.5), "a second process's transaction began while the first was open"
        go.touch()
        assert entered.wait(10), "the second transaction did not begin once the first ended"
        thread.join(10)
        assert holder.wait(10) == 0
    finally:
        go.touch()
        holder.wait(10)
    with engine.connect() as connection:
        assert [row.who for row in connection.execute(text("SELECT who FROM marks ORDER BY rowid"))] == [
            "holder",
            "second",
        ]
    assert (tmp_path / "gateway.db.lock").exists()
    engine.dispose()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_share_its_parents_hold(tmp_path: Path) -> None:
    """A descriptor inherited through fork shares its lock: the child must open the file itself."""
    lock = DatabaseLock(tmp_path / "db.lock")
    lock.acquire()
    try:
        pid = os.fork()
        if pid == 0:  # the child: its acquisition must wait while the parent holds the lock
            got = threading.Event()
            threading.Thread(target=lambda: (lock.acquire(), got.set()), daemon=True).start()
            os._exit(1 if got.wait(0.5) else 0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child took the lock its parent holds"
    finally:
        lock.release()


def test_the_lock_is_reentrant_and_let_go_by_the_last_release(tmp_path: Path) -> None:
    lock = DatabaseLock(tmp_path / "db.lock")
    lock.acquire()
    lock.acquire()  # the same thread again (a nested use of the engine)
    lock.release()
    other = DatabaseLock(tmp_path / "db.lock")  # another open file description, as another process has
    took = threading.Event()
    thread = threading.Thread(target=lambda: (other.acquire(), took.set(), other.release()))
    thread.start()
    assert not took.wait(0.3), "the file lock was let go before the outermost release"
    lock.release()
    assert took.wait(5)
    thread.join(5)


def test_every_engine_of_a_process_on_one_file_shares_one_lock(tmp_path: Path) -> None:
    first = connect(f"sqlite:///{tmp_path / 'gateway.db'}")
    second = connect(f"sqlite:///{tmp_path / 'gateway.db'}")
    with first.begin() as connection:
        connection.execute(text("SELECT 1"))
        with second.begin() as nested:  # the same thread: re-entered, not a wait on its own flock
            nested.execute(text("SELECT 1"))
    first.dispose()
    second.dispose()


def test_the_database_turn_is_the_lock_its_transactions_take(tmp_path: Path) -> None:
    """The group commit holds the turn across its batch: another thread's transaction waits for it."""
    engine = connect(f"sqlite:///{tmp_path / 'gateway.db'}")
    entered = threading.Event()

    def transaction() -> None:
        with engine.begin() as connection:
            entered.set()
            connection.execute(text("SELECT 1"))

    with database_turn(engine):
        thread = threading.Thread(target=transaction)
        thread.start()
        assert not entered.wait(0.3), "a transaction began while the database's turn was held"
    assert entered.wait(5)
    thread.join(5)
    engine.dispose()


def test_a_database_named_by_uri_is_locked_by_its_path(tmp_path: Path) -> None:
    from gateway.store.db import _database_lock

    database = tmp_path / "read only.db"
    by_uri = _database_lock(f"file:{str(database).replace(' ', '%20')}?mode=ro&uri=true")
    assert by_uri.path == tmp_path / "read only.db.lock"
    assert by_uri is _database_lock(str(database))  # one lock per file, however it is named
    assert _database_lock("file::memory:?cache=shared").path is None
    assert _database_lock("file:whatever?mode=memory&cache=shared").path is None


def test_the_command_line_takes_no_file_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside ``gateway serve`` a long read (``gateway audit verify``) must not stop the intake."""
    monkeypatch.setattr(db, "_ACROSS_PROCESSES", False)
    lock = DatabaseLock(tmp_path / "db.lock")
    other = DatabaseLock(tmp_path / "db.lock")
    lock.acquire()
    took = threading.Event()
    thread = threading.Thread(target=lambda: (other.acquire(), took.set(), other.release()))
    thread.start()
    assert took.wait(5), "a lock without the switch waited for another's"
    thread.join(5)
    lock.release()
    assert not (tmp_path / "db.lock").exists()
