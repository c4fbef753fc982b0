"""Group commit: one thread per process runs the database work of many messages in one transaction.

Every message's database stages (sender, certificate and replay, recipient, domain rules, store,
answers) used to run in a transaction of their own, so each message paid for its own BEGIN, COMMIT
(on PostgreSQL a write-ahead-log flush), connection checkout, audit counter and, on SQLite, its own
turn at the process's one transaction. The request threads now do the CPU work (parse, schema,
signature) on their own and hand the rest to the :class:`BatchWriter`, which takes whatever work is
waiting when it becomes free (up to ``limit`` pieces) and runs it in one transaction:

- a piece that fails (a :class:`~gateway.errors.Fault` such as a duplicate id or a domain conflict,
  or any other error) is rolled back alone and gets its own error, while the others commit. Its
  audit entries are forgotten with it. A batch is first run without savepoints: most batches refuse
  nothing, and a SAVEPOINT and its RELEASE were two of the eleven or so statements of a message,
  with SQLAlchemy's bookkeeping around each (about 3 % of the intake's CPU, and held in the
  database's lock). When a piece fails, that attempt is rolled back whole and the batch runs again
  with each piece in a SAVEPOINT of its own, as it always did (``reruns`` counts it), except the
  failed piece: it keeps the error it met, which the rerun would only repeat, since the pieces
  before it wrote the same again. So it runs once, and whatever it counted outside the database (a
  short code's failures, ``gateway.grants.throttle``) is counted once. A batch with a refusal thus
  costs its work twice at most; only a sender with a certificate of the trust anchors reaches these
  stages, and the batch size bounds the work;
- the pieces of a batch run one after the other in the same transaction, so each sees what the
  earlier ones wrote: two conflicting messages about one graduate in one batch behave exactly as
  they would one after the other (the second meets the first's state);
- a piece may bring a ``finish``, run once every piece of the batch has done its work, just before
  the commit: the intake gives the batch's audit entries their indexes there and signs each
  accepted message's receipt, which names its index, so that the receipt is stored with its
  message in one commit (a request waits for one batch, not two: bench/intake/README.md, eighth
  pass). A finish that fails fails its piece alone, as its work would: the batch runs again without it.
  The rows the pieces left for the commit (``gateway.store.deferred``) are written before the first
  finish, since the intake's takes the audit log's counter row, which every process's batches wait
  for until this one commits: with four workers on PostgreSQL it was held or waited on 65 - 70 % of
  the time, 20 % once the row waited for the receipts' rows alone (bench/intake/README.md, ninth pass);
- a piece may bring a ``settle`` instead, run in the writer's thread once the batch has committed,
  outside any transaction; the work it returns runs in the writer's next batch (which starts at
  once, with whatever queued meanwhile), and the caller's ``run`` returns after that commit. On
  PostgreSQL the intake signs its receipts there: the batch's audit entries take their indexes in
  the COMMIT's round trip (``gateway.audit.log.index_at_commit``), so the counter row is held for
  no round trip to the gateway and no signature; with four workers it was held or waited on 16 -
  21 % of the time with the receipts signed inside, 4 - 5 % this way (bench/intake/README.md,
  fourteenth pass). The message is then committed before its receipt: a settle or a settling work
  that fails fails its caller's ``run``, the piece's work staying committed;
- the caller's ``run`` returns only after the commit (or raises the piece's error, or the batch's
  when the commit itself fails: then nothing of the batch is stored and every piece is told);
- a batch that PostgreSQL aborts as a deadlock or serialisation failure (two processes' batches
  touching the same rows in different orders) is run again, one piece per transaction.

No piece waits for a timer: the writer takes what queued while it committed the previous batch, so
a lone message is committed at once and a burst shares its commits. On SQLite it first takes the
database's turn (``gateway.store.db.database_turn``: the lock that several worker processes on one
file take turns at) and only then gathers its batch, so that what queued while another process held
the file joins it: measured with two workers, a median of 444 accepted/s before (6 runs), 497 after
(10 runs, 385 - 560; bench/intake/README.md, fifth pass).

The thread is started on first use, and again in a forked child (gunicorn's workers), where the
parent's thread does not exist.

A batch whose connection turns out broken before its COMMIT was sent (PostgreSQL restarted, the
connection was cut; the pool checks a connection only after it has lain unused a second,
``gateway.store.db``) stored nothing: it runs again, once, on a new connection, as a checkout's ping
would have found the broken one and taken another.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.log import PENDING_KEY
from gateway.monitoring.threads import WRITER, name_thread
from gateway.store.deferred import DEFERRED_KEY, commit, defer_writes, write_now

log = logging.getLogger(__name__)

# PostgreSQL's SQLSTATEs of a transaction aborted for a conflict with another, which succeeds when run again.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure

Work = Callable[[Session], None]
Settle = Callable[[], Work | None]


@dataclass
class _Piece:
    work: Work
    savepoint: bool = True
    finish: Work | None = None  # run after every piece's work, before the commit (``BatchWriter.run``)
    key: object = None  # handed to ``look_ahead`` with the batch's others (``BatchWriter.run``)
    settle: Settle | None = None  # run after the batch's commit; its work goes in the next batch (``BatchWriter.run``)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class _RunAgain(Exception):
    """A piece failed in a batch run without savepoints: roll it all back and run it with them."""

    def __init__(self, piece: _Piece, error: BaseException) -> None:
        super().__init__()
        self.piece = piece
        self.error = error


class BatchWriter:
    """Runs pieces of database work from many threads in shared transactions (group commit).

    ``prepare`` is called on each batch's session before its first piece (``defer_indexes`` on
    PostgreSQL, for instance). ``look_ahead(session, keys)`` is called after it with the ``key``
    of every piece that has one, so that what each piece would look up can be looked up for all at
    once (the intake's replay check: ``gateway.intake.earlier``). ``turn`` is entered before a
    batch is gathered and left after its commit (``gateway.store.db.database_turn``: on SQLite,
    the database's lock across processes).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        limit: int = 64,
        prepare: Callable[[Session], None] | None = None,
        look_ahead: Callable[[Session, list[object]], None] | None = None,
        name: str = WRITER,
        turn: AbstractContextManager[object] | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("a batch holds at least one piece of work")
        self._committing = False  # the attempt's COMMIT may have been sent
        self._sessions = sessions
        self._limit = limit
        self._prepare = prepare
        self._look_ahead = look_ahead
        self._turn = turn or contextlib.nullcontext()
        self._name = name
        self._queue: queue.SimpleQueue[_Piece] = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self.batches = 0  # committed or failed, since start (for tests)
        self.reruns = 0  # batches run again with savepoints after a piece failed without (for tests)

    def run(
        self,
        work: Work,
        *,
        savepoint: bool = True,
        finish: Work | None = None,
        key: object = None,
        settle: Settle | None = None,
    ) -> None:
        """Run ``work(session)`` in the next batch; returns after its commit, or raises its error.

        ``savepoint=False``: a piece that can fail only with the database (an UPDATE by primary
        key, say); if it raises all the same, the whole batch fails with it. Otherwise a failing
        piece is rolled back alone (see the module's docstring).

        ``finish(session)``, if given, runs once every piece of the batch has done its work, just
        before the commit, when this piece's work succeeded: what needs the whole batch written
        first (the intake signs a receipt there, once the batch's audit entries have their leaf
        indexes). If it raises, the batch is rolled back and runs again without this piece, which
        gets the error, as a failing ``work`` does.

        ``key``, if not None, goes to the writer's ``look_ahead`` with the batch's other keys,
        before any piece's work.

        ``settle()``, if given, runs in the writer's thread once the batch has committed, when this
        piece's work succeeded, outside any transaction; the work it returns, if any, runs in the
        writer's next batch as a piece without a savepoint, and ``run`` returns after that batch's
        commit (or raises its error: this piece's work is then committed, its settling's is not).
        The intake signs a receipt there on PostgreSQL, once its batch's commit has given the
        audit entries their indexes, and keeps it in the next batch. If ``settle`` raises, ``run``
        raises its error.
        """
        piece = _Piece(work, savepoint, finish, key, settle)
        self._ensure_thread()
        self._queue.put(piece)
        piece.done.wait()
        if piece.error is not None:
            raise piece.error

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._start_lock:
            if self._thread is None or self._pid != os.getpid():  # first use, or a forked child
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._pid = os.getpid()
                self._thread.start()

    def _loop(self) -> None:
        name_thread(self._name)  # for top -H and bench/intake (gateway.monitoring.threads)
        pieces = self._queue
        settling: list[_Piece] = []  # the last batch's pieces whose settling work waits for this one
        while True:
            batch, settling = settling or [pieces.get()], []
            try:
                # The database's turn first (``turn``: on SQLite, its lock across processes), then
                # whatever queued meanwhile: the longer the wait for another process, the larger the batch.
                with self._turn:
                    while len(batch) < self._limit:
                        try:
                            batch.append(pieces.get_nowait())
                        except queue.Empty:
                            break
                    self._commit(batch)
                settling = _settle(batch)
            except BaseException as exc:  # never leave a caller waiting, whatever happened
                log.exception("the batch writer failed")
                for piece in batch:
                    if piece.error is None:
                        piece.error = exc
            finally:
                later = {id(piece) for piece in settling}  # their settling work is in the next batch
                for piece in batch:
                    if id(piece) not in later:
                        piece.done.set()

    def _commit(self, batch: list[_Piece]) -> None:
        self.batches += 1
        try:
            self._transaction(batch)
        except DBAPIError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            if len(batch) > 1 and sqlstate in RETRYABLE_SQLSTATES:
                log.info("a batch of %d met a concurrent one (%s): each runs alone", len(batch), sqlstate)
                for piece in batch:
                    piece.error = None
                    try:
                        self._transaction([piece])
                    except Exception as alone:
                        piece.error = alone
                return
            for piece in batch:
                if piece.error is None:
                    piece.error = exc
        except Exception as exc:
            for piece in batch:
                if piece.error is None:
                    piece.error = exc

    def _transaction(self, batch: list[_Piece]) -> None:
        """The batch without savepoints; if a piece fails, rolled back and run again with them.

        With savepoints a failing piece's work is rolled back alone; only a failing ``finish`` (run
        after the savepoints are released) makes a batch run again from there, without its piece:
        each run leaves one piece out, so a batch runs at most once more than it has pieces.
        """
        savepoints = False
        while True:
            try:
                self._attempt(batch, savepoints=savepoints)
                return
            except _RunAgain as failed:
                self.reruns += 1
                failed.piece.error = failed.error  # not run again (the module's docstring)
                batch = [piece for piece in batch if piece is not failed.piece]
                savepoints = True

    def _attempt(self, batch: list[_Piece], *, savepoints: bool) -> None:
        """One attempt at ``batch`` in one transaction. On a connection found broken before the
        COMMIT was sent nothing is stored: the attempt is made again, once, on a new connection
        (the module's docstring)."""
        try:
            self._attempt_in(self._sessions(), batch, savepoints=savepoints)
        except DBAPIError as exc:
            if not exc.connection_invalidated or self._committing:
                raise
            log.info("the batch's connection was broken (%s): it runs on another", type(exc.orig).__name__)
            self._attempt_in(self._sessions(), batch, savepoints=savepoints)

    def _attempt_in(self, session: Session, batch: list[_Piece], *, savepoints: bool) -> None:
        self._committing = False
        with session:
            session.begin()
            self._work(session, batch, savepoints=savepoints)
            self._committing = True  # from here a broken connection may have committed: not run again
            commit(session)  # on PostgreSQL the rows kept for the commit and the COMMIT in one round trip

    def _work(self, session: Session, batch: list[_Piece], *, savepoints: bool) -> None:
        """The batch's pieces in ``session``'s transaction, up to its commit."""
        _begin_for_savepoints(session)
        defer_writes(session)  # the notices', subjects' and receipts' rows: one statement each at the commit
        if self._prepare is not None:
            self._prepare(session)
        if self._look_ahead is not None and (keys := [piece.key for piece in batch if piece.key is not None]):
            self._look_ahead(session, keys)
        for piece in batch:
            if not piece.savepoint:
                piece.work(session)  # an error fails the batch
            elif savepoints:
                piece.error = _run_piece(session, piece.work)
            else:
                _run_bare(session, piece, piece.work)
        finishes = [(piece, piece.finish) for piece in batch if piece.finish is not None and piece.error is None]
        if finishes:
            # The rows that wait for the commit go now: the finishes take the audit log's counter
            # row, which every process's batches wait for until this one commits.
            write_now(session)
        for piece, finish in finishes:
            _run_bare(session, piece, finish)


def _settle(batch: list[_Piece]) -> list[_Piece]:
    """After ``batch``'s commit: each successful piece's ``settle``, in order; the pieces whose
    settling work is to run in the next batch, made into pieces of that work (without a savepoint)."""
    settling = []
    for piece in batch:
        settle, piece.settle = piece.settle, None
        if settle is None or piece.error is not None:
            continue
        try:
            work = settle()
        except Exception as exc:
            piece.error = exc
            continue
        if work is not None:
            piece.work, piece.savepoint, piece.finish, piece.key = work, False, None, None
            settling.append(piece)
    return settling


def _begin_for_savepoints(session: Session) -> None:
    """On SQLite, begin the batch's transaction now, taking the write lock (``BEGIN IMMEDIATE``).

    Python's sqlite3 begins a transaction only before its first INSERT, UPDATE or DELETE: a SAVEPOINT
    issued before any would open the transaction itself, and its RELEASE would commit it. Taking the
    write lock at once also means that the batch, which reads before it writes, never meets another
    process's commit in between (SQLITE_BUSY at its first write): it waits at its BEGIN instead. In
    this process the engine's lock (``gateway.store.db``) already runs one transaction at a time.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _run_bare(session: Session, piece: _Piece, work: Work) -> None:
    """``work`` of ``piece`` (its work or its finish) without a savepoint: if it fails, the batch's
    attempt is rolled back (``_RunAgain``), and ``piece`` gets the error."""
    try:
        work(session)
    except DBAPIError as exc:
        if _transaction_lost(exc):
            raise  # the whole batch failed: nothing of it is stored
        raise _RunAgain(piece, exc) from None
    except Exception as exc:
        raise _RunAgain(piece, exc) from None


# What a piece leaves in its session for the commit: audit entries (``gateway.audit.log.record``)
# and deferred rows (``gateway.store.deferred.write``).
_KEPT_FOR_COMMIT = (PENDING_KEY, DEFERRED_KEY)


def _run_piece(session: Session, work: Work) -> BaseException | None:
    """``work`` in a savepoint; its error (after rolling it back alone), or None."""
    kept = {key: session.info.setdefault(key, []) for key in _KEPT_FOR_COMMIT}
    marks = {key: len(items) for key, items in kept.items()}
    try:
        with session.begin_nested():
            work(session)
    except DBAPIError as exc:
        if _transaction_lost(exc):
            raise  # the whole batch failed: nothing of it is stored
        _forget_since(session, kept, marks)
        return exc
    except Exception as exc:
        _forget_since(session, kept, marks)
        return exc
    return None


def _forget_since(session: Session, kept: dict[str, list[object]], marks: dict[str, int]) -> None:
    """Keep what the batch's earlier pieces left for the commit (audit entries, deferred rows), and
    only that: the rolled-back piece's is dropped. (Their rollback listeners drop the whole lists on
    any rollback, a savepoint's included.)"""
    for key, items in kept.items():
        del items[marks[key] :]
        session.info[key] = items


def _transaction_lost(exc: DBAPIError) -> bool:
    """The database or the connection failed, not the piece's own statement."""
    return isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated
