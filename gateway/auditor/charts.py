"""Volume and failures per service over time: the figures behind the auditor's charts.

Four charts over a :class:`Window` of days or hours (Beijing time): messages accepted (by
service, counted in the database), messages refused (by fault code), failed delivery attempts and
dead letters (by service), the last three from the audit log's entries. :func:`tally` (pure)
puts timed events into the window's bins; everything else only fetches the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.auditor.forms import FieldError, Invalid, day_range, parse_day
from gateway.clock import BEIJING
from gateway.delivery.plumbing import PLUMBING_SERVICES
from gateway.messages.models import Delivery, Message

MAX_BINS = 400
DEFAULT_DAYS = 14
UNKNOWN = "?"  # a refused message whose service could not be read, a delivery of an unknown message


Timestamp = ColumnElement[datetime] | InstrumentedAttribute[datetime]


class Binning(StrEnum):
    DAY = "day"
    HOUR = "hour"


WIDTHS = {Binning.DAY: timedelta(days=1), Binning.HOUR: timedelta(hours=1)}


@dataclass(frozen=True)
class Window:
    """``count`` bins of ``binning`` from ``start`` (the start of a Beijing day)."""

    start: datetime
    binning: Binning
    count: int

    @property
    def width(self) -> timedelta:
        return WIDTHS[self.binning]

    @property
    def end(self) -> datetime:
        return self.start + self.count * self.width

    def index(self, moment: datetime) -> int | None:
        """The bin ``moment`` falls in, or None outside the window."""
        if not self.start <= moment < self.end:
            return None
        return int((moment - self.start) // self.width)

    def bin_start(self, index: int) -> datetime:
        return (self.start + index * self.width).astimezone(BEIJING)

    def label(self, index: int) -> str:
        start = self.bin_start(index)
        return start.strftime("%Y-%m-%d") if self.binning == Binning.DAY else start.strftime("%m-%d %H:00")


def parse_window(fields: Mapping[str, str], today: date) -> tuple[Window | None, list[FieldError]]:
    """The window from the form's ``from``, ``to`` (days, inclusive) and ``bin``; default the last 14 days."""
    binning = Binning.HOUR if fields.get("bin") == Binning.HOUR else Binning.DAY
    try:
        first = parse_day(fields.get("from", ""), "from") or today - timedelta(days=DEFAULT_DAYS - 1)
        last = parse_day(fields.get("to", ""), "to") or max(today, first)
        since, until = day_range(first, last)
    except Invalid as exc:
        return None, [exc.error]
    assert since is not None and until is not None
    window = Window(since, binning, (until - since) // WIDTHS[binning])
    if window.count > MAX_BINS:
        return None, [FieldError("to", "audit.error.too_many_bins", {"bins": str(window.count), "max": str(MAX_BINS)})]
    return window, []


@dataclass(frozen=True)
class Series:
    key: str  # a service name or a fault code
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Chart:
    name: str  # accepted, refused, failed_attempts, dead_letters
    window: Window
    series: tuple[Series, ...]  # largest total first

    @property
    def totals(self) -> tuple[int, ...]:
        return tuple(sum(column) for column in zip(*(s.counts for s in self.series), strict=True)) or (
            (0,) * self.window.count
        )

    @property
    def total(self) -> int:
        return sum(s.total for s in self.series)


def tally(name: str, events: Iterable[tuple[datetime, str, int]], window: Window) -> Chart:
    """A chart of ``events`` (when, series key, how many) in ``window``; events outside it are left out."""
    counts: dict[str, list[int]] = {}
    for moment, key, n in events:
        index = window.index(moment)
        if index is not None:
            counts.setdefault(key, [0] * window.count)[index] += n
    series = sorted((Series(k, tuple(v)) for k, v in counts.items()), key=lambda s: (-s.total, s.key))
    return Chart(name, window, tuple(series))


def charts(session: Session, window: Window, service: str | None) -> list[Chart]:
    """The four charts for ``window``, of one service or (None) of every business service."""
    refused, failed, dead = _logged(session, window, service)
    return [
        tally("accepted", _accepted(session, window, service), window),
        tally("refused", refused, window),
        tally("failed_attempts", failed, window),
        tally("dead_letters", dead, window),
    ]


def _bin_label(column: Timestamp, binning: Binning, dialect: str) -> ColumnElement[str]:
    """The Beijing day or hour of a UTC timestamp column, as text, computed by the database."""
    if dialect == "postgresql":
        pattern = "YYYY-MM-DD" if binning == Binning.DAY else 'YYYY-MM-DD"T"HH24'
        local = column.op("AT TIME ZONE")(literal_column("'UTC'")) + literal_column("interval '8 hours'")
        return func.to_char(local, pattern)
    pattern = "%Y-%m-%d" if binning == Binning.DAY else "%Y-%m-%dT%H"
    return func.strftime(pattern, column, "+8 hours")


def _parse_label(label: str, binning: Binning) -> datetime:
    text = label if binning == Binning.HOUR else label + "T00"
    return datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=BEIJING)


def _accepted(session: Session, window: Window, service: str | None) -> list[tuple[datetime, str, int]]:
    label = _bin_label(Message.received_at, window.binning, session.get_bind().dialect.name).label("bin")
    which = Message.service == service if service else Message.service.not_in(PLUMBING_SERVICES)
    query = (
        select(label, Message.service, func.count())
        .where(which, Message.received_at >= window.start, Message.received_at < window.end)
        .group_by(label, Message.service)
    )
    return [(_parse_label(b, window.binning), s, n) for b, s, n in session.execute(query)]


Events = list[tuple[datetime, str, int]]


def _logged(session: Session, window: Window, service: str | None) -> tuple[Events, Events, Events]:
    """Refusals by fault code, failed attempts and dead letters by service, from the audit log."""
    kinds = ("message.refused", "delivery.failed_attempt", "delivery.dead_lettered")
    rows = session.execute(
        select(AuditEntry.at, AuditEntry.kind, AuditEntry.entry).where(
            AuditEntry.kind.in_(kinds), AuditEntry.at >= window.start, AuditEntry.at < window.end
        )
    )
    refused: Events = []
    deliveries: list[tuple[datetime, str, str, str]] = []  # at, kind, message id, recipient
    for at, kind, entry in rows:
        facts = decode(entry)
        if kind == "message.refused":
            if service is None or facts.get("service") == service:
                refused.append((at, str(facts.get("code") or UNKNOWN), 1))
        else:
            deliveries.append((at, kind, str(facts.get("message_id") or ""), str(facts.get("recipient") or "")))
    services = _services_of(session, {m for _, _, m, _ in deliveries})
    failed: Events = []
    dead: Events = []
    for at, kind, message_id, recipient in deliveries:
        of = services.get((message_id, recipient), UNKNOWN)
        if service is None or of == service:
            (failed if kind == "delivery.failed_attempt" else dead).append((at, of, 1))
    return refused, failed, dead


def _services_of(session: Session, message_ids: set[str]) -> dict[tuple[str, str], str]:
    """(message id, delivery recipient) -> service, for the deliveries of these messages."""
    found: dict[tuple[str, str], str] = {}
    ids = sorted(message_ids)
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(Message.message_id, Delivery.recipient_id, Message.service)
            .join(Delivery, Delivery.message_pk == Message.id)
            .where(Message.message_id.in_(ids[start : start + 500]))
        )
        for message_id, recipient, of in rows:
            found[(message_id, recipient)] = of
    return found
