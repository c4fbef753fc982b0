"""Per-recipient fairness: a recipient that stops answering must not take every worker thread (pure).

All push deliveries share one queue and one pool of threads. Without a limit, a recipient that
times out holds a thread for its whole push timeout on every one of its deliveries, and the other
recipients' deliveries wait behind them. :class:`RecipientGate` is a circuit breaker per recipient,
kept by each worker process for the recipients it delivers to:

- **closed** (the recipient answers): no limit;
- **suspect** (its last attempt failed in transport: a timeout, a refused or broken connection):
  one delivery at a time; the others are deferred for the length of a push timeout, by which time
  that one has succeeded or failed;
- **open** (``trip_after`` transport failures in a row): every delivery is deferred until the
  circuit's time is up (``open_seconds``, doubling each time it trips again, at most ``cap_seconds``);
  then one delivery probes, as when suspect. The first answer closes the circuit again.

A deferred delivery does not occupy a thread: it is put back ``waiting_for_retry`` until then,
without an attempt counted, and the sweep sends it again when it is due. An answer of any kind,
even a rejection, counts as the recipient answering: only silence is held against it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta


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


@dataclass
class RecipientGate:
    trip_after: int = 3
    open_seconds: float = 30.0
    cap_seconds: float = 600.0
    _recipients: dict[str, _Recipient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def troubled(self) -> bool:
        """True while any recipient is suspect or open (only then must a delivery be checked first)."""
        with self._lock:
            return any(state.failures for state in self._recipients.values())

    def admit(self, recipient_id: str, now: datetime, push_timeout: float) -> Admission:
        """Take a slot for a delivery to ``recipient_id`` now, or say until when it must wait.

        Every allowed admission must be followed by one :meth:`release`.
        """
        with self._lock:
            state = self._recipients.setdefault(recipient_id, _Recipient())
            if state.open_until is not None and now < state.open_until:
                return Admission(
                    False,
                    state.open_until,
                    f"deferred: {recipient_id} failed to answer {state.failures} times in a row; "
                    f"its circuit is open until {state.open_until.isoformat(timespec='seconds')}",
                )
            if state.failures and state.in_flight >= 1:
                until = now + timedelta(seconds=push_timeout + 1.0)
                return Admission(
                    False,
                    until,
                    f"deferred: {recipient_id} did not answer its last delivery; one delivery at a time until it does",
                )
            state.in_flight += 1
            return Admission(True)

    def release(self, recipient_id: str, answered: bool | None, now: datetime) -> None:
        """The admitted delivery is over: ``answered`` True unless it failed in transport, None
        when it was never pushed (nothing learnt about the recipient)."""
        with self._lock:
            state = self._recipients.setdefault(recipient_id, _Recipient())
            state.in_flight = max(state.in_flight - 1, 0)
            if answered is None:
                return
            if answered:
                if state.failures:
                    self._recipients[recipient_id] = _Recipient(in_flight=state.in_flight)
                return
            state.failures += 1
            if state.failures >= self.trip_after and (state.open_until is None or now >= state.open_until):
                seconds = min(self.open_seconds * 2**state.trips, self.cap_seconds)
                state.open_until = now + timedelta(seconds=seconds)
                state.trips += 1

    def snapshot(self) -> dict[str, dict[str, object]]:
        """The recipients that are not plainly healthy (for logs and tests)."""
        with self._lock:
            return {
                recipient: {"failures": s.failures, "in_flight": s.in_flight, "open_until": s.open_until}
                for recipient, s in self._recipients.items()
                if s.failures or s.open_until
            }
