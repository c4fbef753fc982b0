"""The group commit's writer on its own: pieces of one batch, what fails alone and what fails together."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, column, create_engine, event, table, text
from sqlalchemy import insert as insert_into
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gateway.intake.writer import BatchWriter
from gateway.store.deferred import defer_writes, write


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = create_engine(f"sqlite:///{tmp_path / 'writer.db'}", connect_args={"check_same_thread": False})
    with made.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (v TEXT PRIMARY KEY)")
    yield made
    made.dispose()


def rows(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.execute(text("SELECT v FROM t")).scalars())


def insert(value: str) -> Callable[[Session], None]:
    return lambda session: session.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value}) and None


def in_one_batch(
    writer: BatchWriter,
    pieces: list[tuple[Callable[[Session], None], bool]],
    finishes: list[Callable[[Session], None] | None] | None = None,
) -> list[BaseException | None]:
    """Run ``pieces`` (work, savepoint), with ``finishes`` if given, from threads of their own,
    queued behind a held piece so that they share the next batch; what each raised."""
    gate, entered = threading.Event(), threading.Event()

    def hold(_session: Session) -> None:
        entered.set()
        assert gate.wait(30)

    holder = threading.Thread(target=writer.run, args=(hold,))
    holder.start()
    assert entered.wait(30)
    outcomes: list[BaseException | None] = [None] * len(pieces)

    def run(i: int) -> None:
        work, savepoint = pieces[i]
        try:
            writer.run(work, savepoint=savepoint, finish=finishes[i] if finishes else None)
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(pieces))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while writer._queue.qsize() < len(pieces):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    batches = writer.batches
    gate.set()
    for thread in [holder, *threads]:
        thread.join(30)
    assert writer.batches == batches + 1, "the pieces did not share one batch"
    return outcomes


def counting(runs: list[str]) -> Callable[[str], Callable[[Session], None]]:
    """``counted(value)``: a piece that inserts ``value`` and notes in ``runs`` that it ran."""

    def counted(value: str) -> Callable[[Session], None]:
        def work(session: Session) -> None:
            runs.append(value)
            insert(value)(session)

        return work

    return counted


def test_a_failing_piece_is_rolled_back_alone(engine: Engine) -> None:
    writer = BatchWriter(sessionmaker(engine))

    def fails(session: Session) -> None:
        insert("b")(session)
        raise ValueError("refused")

    outcomes = in_one_batch(writer, [(insert("a"), True), (fails, True), (insert("c"), True)])
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ValueError)
    assert rows(engine) == ["a", "c"]
    assert writer.reruns == 1  # first without savepoints, then again with them


def noting_finish(runs: list[str], value: str, fail: bool = False) -> Callable[[Session], None]:
    """A finish that notes ``value`` and the rows its batch has written so far, then writes ``value!``."""

    def finish(session: Session) -> None:
        seen = ",".join(sorted(session.execute(text("SELECT v FROM t")).scalars()))
        runs.append(f"{value} saw {seen}")
        if fail:
            raise ValueError("the finish refused")
        insert(f"{value}!")(session)

    return finish


def test_the_finishes_run_after_every_pieces_work_and_commit_with_them(engine: Engine) -> None:
    writer = BatchWriter(sessionmaker(engine))
    runs: list[str] = []
    outcomes = in_one_batch(
        writer,
        [(insert("a"), True), (insert("b"), True), (insert("c"), True)],
        [noting_finish(runs, "a"), None, noting_finish(runs, "c")],
    )
    assert outcomes == [None, None, None]
    assert sorted(runs)[0].startswith("a saw a,b,c")  # every piece's work was done before the first finish
    assert len(runs) == 2 and {run.split()[0] for run in runs} == {"a", "c"}
    assert rows(engine) == ["a", "a!", "b", "c", "c!"]
    assert writer.reruns == 0


def test_a_refused_pieces_finish_does_not_run(engine: Engine) -> None:
    writer = BatchWriter(sessionmaker(engine))
    runs: list[str] = []

    def fails(session: Session) -> None:
        insert("b")(session)
        raise ValueError("refused")

    outcomes = in_one_batch(
        writer,
        [(insert("a"), True), (fails, True), (insert("c"), True)],
        [noting_finish(runs, "a"), noting_finish(runs, "b"), noting_finish(runs, "c")],
    )
    assert outcomes[0] is None and outcomes[2] is None and isinstance(outcomes[1], ValueError)
    assert sorted(runs) == ["a saw a,c", "c saw a,a!,c"] or sorted(runs) == ["a saw a,c,c!", "c saw a,c"]
    assert rows(engine) == ["a", "a!", "c", "c!"]


@pytest.mark.parametrize("with_a_refusal", [False, True])
def test_a_failing_finish_fails_its_piece_alone(engine: Engine, with_a_refusal: bool) -> None:
    """The batch is rolled back and runs again without the piece: it gets the finish's error, and none
    of its work is stored. After a refusal the batch already runs with savepoints, and runs once more."""
    writer = BatchWriter(sessionmaker(engine))
    runs: list[str] = []

    def refused(session: Session) -> None:
        raise LookupError("refused")

    pieces: list[tuple[Callable[[Session], None], bool]] = [(insert("a"), True), (insert("b"), True)]
    finishes = [noting_finish(runs, "a"), noting_finish(runs, "b", fail=True)]
    if with_a_refusal:
        pieces.insert(0, (refused, True))
        finishes.insert(0, None)
    outcomes = in_one_batch(writer, pieces, finishes)
    assert outcomes[-2] is None
    assert isinstance(outcomes[-1], ValueError) and str(outcomes[-1]) == "the finish refused"
    if with_a_refusal:
        assert isinstance(outcomes[0], LookupError)
    assert rows(engine) == ["a", "a!"]
    assert writer.reruns == (2 if with_a_refusal else 1)


def test_a_batch_that_refuses_nothing_runs_without_savepoints_once(engine: Engine) -> None:
    writer = BatchWriter(sessionmaker(engine))
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cu, statement, *_: statements.append(statement))
    runs: list[str] = []
    counted = counting(runs)
    outcomes = in_one_batch(writer, [(counted("a"), True), (counted("b"), True), (counted("c"), True)])
    assert outcomes == [None, None, None]
    assert rows(engine) == ["a", "b", "c"]
    assert sorted(runs) == ["a", "b", "c"] and writer.reruns == 0
    assert not [s for s in statements if "SAVEPOINT" in s.upper()]


def test_after_a_refusal_the_batch_runs_again_and_each_piece_sees_only_what_committed(engine: Engine) -> None:
    """The first attempt's writes of the pieces before the failing one are rolled back with it, not
    kept twice: each piece runs again from the start (a second insert of "a" would break its key)."""
    writer = BatchWriter(sessionmaker(engine))
    runs: list[str] = []
    counted = counting(runs)
    outcomes = in_one_batch(writer, [(counted("a"), True), (counted("a"), True), (counted("b"), True)])
    assert (outcomes[0] is None) != (outcomes[1] is None)  # the later "a": the duplicate key, its own error
    assert outcomes[2] is None
    assert rows(engine) == ["a", "b"]
    assert runs.count("a") == 3  # twice in the first attempt, which stopped at the duplicate; it is not run again
    assert runs.count("b") in (1, 2)  # in the first attempt only if queued before the duplicate
    assert writer.reruns == 1


def test_a_piece_without_a_savepoint_that_fails_fails_its_batch(engine: Engine) -> None:
    writer = BatchWriter(sessionmaker(engine))

    def fails(session: Session) -> None:
        insert("b")(session)
        raise ValueError("the database went away")

    outcomes = in_one_batch(writer, [(insert("a"), True), (fails, False)])
    assert all(isinstance(outcome, ValueError) for outcome in outcomes)
    assert rows(engine) == []


def test_a_batch_aborted_as_a_deadlock_runs_again_one_piece_at_a_time(engine: Engine) -> None:
    writer = BatchWriter(sessionmaker(engine))
    attempts: list[int] = []

    class Deadlock(Exception):
        sqlstate = "40P01"

    def meets_a_deadlock_once(session: Session) -> None:
        attempts.append(1)
        insert("b")(session)
        if len(attempts) == 1:
            raise OperationalError("UPDATE ...", {}, Deadlock("deadlock detected"))

    outcomes = in_one_batch(writer, [(insert("a"), True), (meets_a_deadlock_once, True)])
    assert outcomes == [None, None]
    assert len(attempts) == 2
    assert rows(engine) == ["a", "b"]


def test_a_commit_that_fails_tells_every_piece(engine: Engine) -> None:
    sessions = sessionmaker(engine)
    writer = BatchWriter(sessions)

    @event.listens_for(sessions, "before_commit")
    def commit_fails(session: Session) -> None:
        if session.info.get("fail"):
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    def marks(session: Session) -> None:
        insert("b")(session)
        session.info["fail"] = True

    outcomes = in_one_batch(writer, [(insert("a"), True), (marks, True)])
    assert all(isinstance(outcome, OperationalError) for outcome in outcomes)
    assert rows(engine) == []


class Turn:
    """A turn at the database whose ``asked`` is set once the writer waits for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.asked = threading.Event()

    def __enter__(self) -> None:
        self.asked.set()
        self.lock.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.lock.release()


def test_what_queues_while_the_writer_waits_for_its_turn_joins_the_batch(engine: Engine) -> None:
    """On a database shared by processes the writer waits for its turn before gathering its batch:
    what queued meanwhile is committed with the first piece, in one transaction."""
    other_process = Turn()  # stands for another process's hold of the database
    writer = BatchWriter(sessionmaker(engine), turn=other_process)
    waiting = threading.Event()
    other_process.lock.acquire()
    first = threading.Thread(target=writer.run, args=(lambda _session: waiting.set(),))
    first.start()
    deadline = time.monotonic() + 10
    # the writer took the first piece and waits for its turn (not: the queue looked empty, which it
    # also does before the first piece is queued; then one of the others could miss the batch)
    assert other_process.asked.wait(10)
    others = [threading.Thread(target=writer.run, args=(insert(f"v{i}"),)) for i in range(4)]
    for thread in others:
        thread.start()
    while writer._queue.qsize() < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not waiting.is_set(), "the first piece ran before the writer had its turn"
    other_process.lock.release()
    for thread in [first, *others]:
        thread.join(10)
    assert waiting.is_set()
    assert rows(engine) == ["v0", "v1", "v2", "v3"]
    assert writer.batches == 1, "the pieces that queued during the wait went into a batch of their own"


T = table("t", column("v"))
INSERT_T = insert_into(T)


def deferred(value: str) -> Callable[[Session], None]:
    return lambda session: write(session, INSERT_T, {"v": value})


def test_the_batchs_deferred_rows_go_in_one_statement_at_its_commit(engine: Engine) -> None:
    writer = BatchWriter(sessionmaker(engine))
    executed: list[tuple[str, bool]] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cu, sql, _p, _x, many: executed.append((sql, many)))
    outcomes = in_one_batch(writer, [(deferred("a"), True), (deferred("b"), True), (deferred("c"), False)])
    assert outcomes == [None, None, None]
    assert rows(engine) == ["a", "b", "c"]
    inserts = [(sql, many) for sql, many in executed if sql.startswith("INSERT INTO t")]
    assert inserts == [(inserts[0][0], True)]  # one executemany for the three rows


def test_the_pieces_deferred_rows_are_written_before_the_finishes_and_the_finishes_at_the_commit(
    engine: Engine,
) -> None:
    """The finishes take the audit log's counter row, held to the commit: what the pieces deferred
    is written before, so that the row waits for the receipts' rows alone."""
    writer = BatchWriter(sessionmaker(engine))
    seen: list[list[str]] = []

    def finish(session: Session) -> None:
        seen.append(sorted(session.execute(text("SELECT v FROM t")).scalars()))
        write(session, INSERT_T, {"v": "receipt"})
        seen.append(sorted(session.execute(text("SELECT v FROM t")).scalars()))

    outcomes = in_one_batch(writer, [(deferred("a"), True), (deferred("b"), True)], [finish, None])
    assert outcomes == [None, None]
    assert seen == [["a", "b"], ["a", "b"]]  # the pieces' rows before the finish; the finish's own at the commit
    assert rows(engine) == ["a", "b", "receipt"]


def test_a_refused_piece_forgets_its_deferred_rows_and_the_others_keep_theirs(engine: Engine) -> None:
    """Two refusals: the first ends the first attempt; the second is rolled back to its savepoint in
    the batch's second attempt, and its deferred row with it."""
    writer = BatchWriter(sessionmaker(engine))

    def fails(value: str) -> Callable[[Session], None]:
        def work(session: Session) -> None:
            deferred(value)(session)
            raise ValueError("refused")

        return work

    outcomes = in_one_batch(writer, [(deferred("a"), True), (fails("b"), True), (fails("c"), True)])
    assert outcomes[0] is None
    assert isinstance(outcomes[1], ValueError) and isinstance(outcomes[2], ValueError)
    assert rows(engine) == ["a"]
    assert writer.reruns == 1


def test_outside_the_writer_a_write_runs_at_once_and_a_rollback_forgets_deferred_rows(engine: Engine) -> None:
    with sessionmaker(engine)() as session, session.begin():
        write(session, INSERT_T, {"v": "now"})
        assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == 1  # not deferred
    with sessionmaker(engine)() as session:
        with session.begin():
            defer_writes(session)
            write(session, INSERT_T, {"v": "later"})
            assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == 1  # waits for the commit
            session.rollback()
        with session.begin():
            pass  # a commit after the rollback writes nothing left over
    assert rows(engine) == ["now"]


def test_a_settle_runs_after_the_commit_and_its_work_in_the_next_batch(engine: Engine) -> None:
    """``settle`` runs once the piece's batch has committed (another connection sees its row), its
    work goes in the writer's next batch, and ``run`` returns after that batch's commit."""
    writer = BatchWriter(sessionmaker(engine))
    seen_at_settle: list[list[str]] = []

    def settle() -> Callable[[Session], None]:
        seen_at_settle.append(rows(engine))
        return insert("settled")

    writer.run(insert("work"), settle=settle)
    assert seen_at_settle == [["work"]]  # committed before its settle ran
    assert rows(engine) == ["settled", "work"]  # and the settling work committed before run returned
    assert writer.batches == 2


def noting_settle(settled: list[bool]) -> Callable[[], None]:
    """A settle that notes it ran and gives no work."""

    def settle() -> None:
        settled.append(True)

    return settle


def test_a_settle_that_gives_no_work_returns_after_its_own_batch(engine: Engine) -> None:
    writer = BatchWriter(sessionmaker(engine))
    settled: list[bool] = []
    writer.run(insert("work"), settle=noting_settle(settled))
    assert settled == [True] and writer.batches == 1 and rows(engine) == ["work"]


def test_a_refused_pieces_settle_does_not_run(engine: Engine) -> None:
    writer = BatchWriter(sessionmaker(engine))
    writer.run(insert("taken"))
    settled: list[bool] = []
    with pytest.raises(Exception, match="UNIQUE"):
        writer.run(insert("taken"), settle=noting_settle(settled))
    assert settled == []


def test_a_failing_settle_or_settling_work_is_raised_and_the_piece_stays_committed(engine: Engine) -> None:
    writer = BatchWriter(sessionmaker(engine))

    def broken() -> Callable[[Session], None]:
        raise RuntimeError("cannot sign")

    with pytest.raises(RuntimeError, match="cannot sign"):
        writer.run(insert("first"), settle=broken)

    def lost(_session: Session) -> None:
        raise OperationalError("UPDATE t", {}, OSError("the connection was lost"))

    with pytest.raises(OperationalError):
        writer.run(insert("second"), settle=lambda: lost)
    assert rows(engine) == ["first", "second"]  # committed in their own batches all the same
    writer.run(insert("third"))  # and the writer goes on
    assert rows(engine) == ["first", "second", "third"]


def test_settling_work_shares_the_next_batch_with_new_pieces(engine: Engine) -> None:
    writer = BatchWriter(sessionmaker(engine))
    gate = threading.Event()
    queued: list[threading.Thread] = []

    def settle() -> Callable[[Session], None]:
        # a new piece queues while the settle runs: the next batch takes it with the settling work
        thread = threading.Thread(target=writer.run, args=(insert("new"),))
        thread.start()
        queued.append(thread)
        deadline = time.monotonic() + 30
        while writer._queue.qsize() < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        gate.set()
        return insert("settled")

    writer.run(insert("work"), settle=settle)
    assert gate.is_set()
    queued[0].join(30)
    assert rows(engine) == ["new", "settled", "work"] and writer.batches == 2
