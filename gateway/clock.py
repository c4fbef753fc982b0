"""The one clock. Everything that needs the time asks a :class:`Clock`, so tests can fix it."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Protocol

# China Standard Time: the calendar days of the domain (deadlines, offers' validity) and the times
# shown to people. China has kept UTC+8 without daylight saving since 1991: no tz database needed.
BEIJING = timezone(timedelta(hours=8), "UTC+8")


def end_of_day(day: date) -> datetime:
    """The instant ``day`` ends in Beijing time (the next day's 00:00 +08:00).

    What "on DATE" means wherever a person gives a date to judge by (``gateway archives overdue
    --at``, the auditor UI's overdue page, the demo's summary): everything that happened during
    that day in China counts.
    """
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=BEIJING)


def beijing_day(moment: datetime) -> date:
    """The calendar day in China at ``moment``."""
    return moment.astimezone(BEIJING).date()


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are taken to be UTC, as SQLite returns them)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
