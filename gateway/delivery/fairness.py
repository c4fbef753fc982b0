"""Per-recipient fairness: a recipient that is slow or stops answering must not take the worker's threads.

All push deliveries share one queue and one pool of threads. Without a limit, a recipient that
times out holds a thread for its whole push timeout on every one of its deliveries, and the other
recipients' deliveries wait behind them. :class:`RecipientGate`, kept by each worker process for
the recipients it delivers to, bounds that in two ways:

- **a share of the threads**: at most ``max_in_flight`` pushes to one recipient at a time (half the
  worker's threads, :func:`share_of`), and half of that until the recipient has answered this
  worker once (a new recipient that answers has its full share a push later; a dead one holds a
  quarter of the threads for its first push timeout, not half). A delivery over that limit waits
  for one of the recipient's pushes to end, but only briefly; if none ends by then the recipient
  is *saturated*, and its deliveries are deferred (``saturated_seconds``) without waiting, until
  one of its pushes ends.
  How briefly: ``slot_wait`` (a quarter of a second) for a recipient that has answered before,
  whatever its pushes took (a healthy recipient slowed by a loaded machine must not be taken for
  a dead one); for a recipient that has never answered this worker, four times what this worker's
  pushes typically take (``cold_wait_factor``, at least ``cold_wait_floor``, at most
  ``slot_wait``): its pushes have already outlasted most others', and every thread waiting for
  its slot is a thread the other recipients' deliveries queue behind. So a recipient that answers
  in milliseconds keeps its share of the threads busy (each slot free again almost at once), and
  one that is slow or has stopped answering holds at most its share (and, once, the threads
  waiting that moment), from its very first deliveries, before anything is known about it;
- **a circuit breaker**, from what its pushes taught:

  - *closed* (the recipient answers): only the share above;
  - *suspect* (its last attempt failed in transport: a timeout, a refused or broken connection):
    one delivery at a time; the others are deferred for the length of a push timeout, by which
    time that one has succeeded or failed;
  - *open* (``trip_after`` transport failures in a row): every delivery is deferred until the
    circuit's time is up (``open_seconds``, doubling each time it trips again, at most
    ``cap_seconds``); then one delivery probes, as when suspect. The first answer closes it again.

A deferred delivery does not occupy a thread: it is put back ``waiting_for_retry`` until then,
without an attempt counted, and the sweep sends it again when it is due (or, while the recipient
is still held back then, defers it again in bulk). A worker asks :meth:`RecipientGate.held`
before claiming a delivery (the broker message names its recipient), and :meth:`RecipientGate.admit`
for the push itself, which alone takes a slot. An answer of any
kind, even a rejection, counts as the recipient answering: only silence is held against it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

RECIPIENT_SHARE = 0.5  # of a worker's threads, for the pushes to one recipient


def share_of(threads: int, share: float = RECIPIENT_SHARE) -> int:
    """The pushes one recipient may have in flight in a worker of ``threads`` threads (at least 1)."""
    return max(1, int(threads * share))


@dataclass(frozen=True)
class Admission:
    """May a delivery to this recipient go now; if not, until when it waits and why."""

    allowed: bool
    until: datetime | None = None
    reason: str = ""


@dataclass
class _Recipient:
    failures: int = 0  # transport failures in a row
    in_flight: int = 0
    open_until: datetime | None = None
    trips: int = 0  # times the circuit opened since it last closed
    saturated: bool = False  # a delivery found no free slot in time since the last push ended
    push_timeout: float = 0.0  # the last one admit() was given (for held(), whose callers do not read it)
    answered: bool = False  # it has answered a push of this worker (then a slot is worth a full wait)


@dataclass
class RecipientGate:
    trip_after: int = 3
    open_seconds: float = 30.0
    cap_seconds: float = 600.0
    max_in_flight: int | None = None  # per recipient; None: no limit (a worker sets it: share_of)
    slot_wait: float = 0.25  # how long a delivery over the limit waits for a slot (at most half the push timeout)
    saturated_seconds: float = 1.0  # a delivery refused for want of a slot is deferred this long
    cold_wait_factor: float = 4.0  # a recipient that never answered: this many typical pushes' wait
    cold_wait_floor: float = 0.05  # ... but at least this long
    typical_push: float | None = None  # seconds: moving average of this worker's answered pushes
    _recipients: dict[str, _Recipient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slot_freed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._slot_freed = threading.Condition(self._lock)

    def held(self, recipient_id: str, now: datetime) -> Admission | None:
        """The refusal a delivery to ``recipient_id`` would meet now without waiting, or None.

        Takes nothing: for deciding before a claim (or in the sweep) that a delivery is deferred.
        """
        with self._lock:
            state = self._recipients.get(recipient_id)
            if state is None:
                return None
            return self._refusal(recipient_id, state, now)

    def probing(self, recipient_id: str) -> bool:
        """True when the recipient failed last and nothing is in flight to it: one delivery should
        go, as a probe, and the others wait for its outcome."""
        with self._lock:
            state = self._recipients.get(recipient_id)
            return state is not None and state.failures > 0 and state.in_flight == 0

    def admit(self, recipient_id: str, now: datetime, push_timeout: float, wait: bool = True) -> Admission:
        """Take a slot for a push to ``recipient_id`` now, or say until when the delivery must wait.

        At the recipient's limit it first waits (with ``wait``) a moment for one of its pushes to end.
        Every allowed admission must be followed by one :meth:`release`.
        """
        with self._lock:
            state = self._recipients.setdefault(recipient_id, _Recipient())
            state.push_timeout = push_timeout
            patience = self._patience(state) if wait else 0.0
            deadline = time.monotonic() + patience
            while True:
                refusal = self._refusal(recipient_id, state, now)
                if refusal is not None:
                    return refusal
                limit = self._limit(state)
                if limit is None or state.in_flight < limit:
                    state.in_flight += 1
                    return Admission(True)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    state.saturated = True
                    return self._refusal(recipient_id, state, now) or Admission(False)
                self._slot_freed.wait(remaining)

    def release(self, recipient_id: str, answered: bool | None, now: datetime, took: float | None = None) -> None:
        """The admitted push is over: ``answered`` True unless it failed in transport, None when it
        was never pushed (nothing learnt about the recipient); ``took``, the push's seconds."""
        with self._lock:
            state = self._recipients.setdefault(recipient_id, _Recipient())
            state.in_flight = max(state.in_flight - 1, 0)
            state.saturated = False
            self._slot_freed.notify_all()
            if answered is None:
                return
            if answered:
                state.answered = True
                if took is not None:  # an exponential moving average over about the last 16 pushes
                    typical = self.typical_push
                    self.typical_push = took if typical is None else typical + (took - typical) / 16
                if state.failures:
                    state.failures, state.open_until, state.trips = 0, None, 0
                return
            state.failures += 1
            if state.failures >= self.trip_after and (state.open_until is None or now >= state.open_until):
                seconds_open = min(self.open_seconds * 2**state.trips, self.cap_seconds)
                state.open_until = now + timedelta(seconds=seconds_open)
                state.trips += 1

    def snapshot(self) -> dict[str, dict[str, object]]:
        """The recipients that are not plainly healthy, or have pushes in flight (for logs and tests)."""
        with self._lock:
            return {
                recipient: {
                    "failures": s.failures,
                    "in_flight": s.in_flight,
                    "open_until": s.open_until,
                    "saturated": s.saturated,
                }
                for recipient, s in self._recipients.items()
                if s.failures or s.open_until or s.saturated or s.in_flight
            }

    # --- under the lock -----------------------------------------------------------------------

    def _limit(self, state: _Recipient) -> int | None:
        """The pushes the recipient may have in flight: half its share until it has answered once."""
        if self.max_in_flight is None or state.answered:
            return self.max_in_flight
        return max(1, self.max_in_flight // 2)

    def _patience(self, state: _Recipient) -> float:
        """How long a delivery over the recipient's limit waits for one of its slots."""
        patience = self.slot_wait
        if state.push_timeout:
            patience = min(patience, state.push_timeout / 2)
        if not state.answered and self.typical_push is not None:
            patience = min(patience, max(self.cold_wait_floor, self.cold_wait_factor * self.typical_push))
        return patience

    def _refusal(self, recipient_id: str, state: _Recipient, now: datetime) -> Admission | None:
        if state.open_until is not None and now < state.open_until:
            return Admission(
                False,
                state.open_until,
                f"deferred: {recipient_id} failed to answer {state.failures} times in a row; "
                f"its circuit is open until {state.open_until.isoformat(timespec='seconds')}",
            )
        if state.failures and state.in_flight >= 1:
            return Admission(
                False,
                now + timedelta(seconds=state.push_timeout + 1.0),  # that delivery has ended by then
                f"deferred: {recipient_id} did not answer its last delivery; one delivery at a time until it does",
            )
        limit = self._limit(state)
        if state.saturated and limit is not None and state.in_flight >= limit:
            return Admission(
                False,
                now + timedelta(seconds=self.saturated_seconds),  # the sweep defers it again if need be
                f"deferred: {recipient_id} has {state.in_flight} deliveries in flight, its share of this "
                "worker's threads, and none has ended in time",
            )
        return None
