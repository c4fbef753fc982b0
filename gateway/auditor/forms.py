"""Reading the auditor pages' inputs: dates in Beijing time, and errors the page can translate.

Parsing is pure: a bad input becomes a :class:`FieldError` naming the field and a message key of
``gateway/web/i18n`` (with its values), never an exception page. Dates are those of China
Standard Time (UTC+8, no daylight saving), in which the pages also show every time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from gateway.clock import BEIJING


@dataclass(frozen=True)
class FieldError:
    """``name`` is the input's name; ``key`` an i18n message key; ``values`` its placeholders."""

    name: str
    key: str
    values: dict[str, str] = field(default_factory=dict)


class Invalid(ValueError):
    def __init__(self, error: FieldError) -> None:
        super().__init__(error.key)
        self.error = error


def parse_day(text: str, name: str) -> date | None:
    """``YYYY-MM-DD`` (the format of ``<input type=date>``); empty is None; raises :class:`Invalid`."""
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text) if len(text) == 10 else _bad_date(name, text)
    except ValueError:
        return _bad_date(name, text)


def _bad_date(name: str, text: str) -> date:
    raise Invalid(FieldError(name, "audit.error.date", {"value": text[:40]}))


def day_start(day: date) -> datetime:
    """The instant a Beijing calendar day begins."""
    return datetime.combine(day, time(0), tzinfo=BEIJING)


def day_range(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """[start of ``start``, end of ``end``) as instants; raises :class:`Invalid` when the end comes first."""
    if start is not None and end is not None and end < start:
        raise Invalid(FieldError("to", "audit.error.range"))
    return (
        day_start(start) if start is not None else None,
        day_start(end + timedelta(days=1)) if end is not None else None,
    )


def local(moment: datetime | None) -> str:
    """``moment`` as every page shows a time (``gateway.web.i18n.beijing_time``)."""
    from gateway.web.i18n import beijing_time

    return beijing_time(moment)
