"""Charts of volume and failures: the binning (pure), the figures against the database (SQLite and
PostgreSQL), the SVG geometry (pure) and the page with a table beside every chart."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.auditor.charts import Binning, Chart, Series, Window, charts, parse_window, tally
from gateway.auditor.forms import day_start
from gateway.auditor.svg import OTHER, PALETTE, layout, nice_ceiling
from gateway.clock import BEIJING
from gateway.messages.models import Delivery, Message
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction
from tests.auditor.helpers import messages
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY

JUNE_1 = day_start(date(2026, 6, 1))  # 2026-05-31T16:00Z


def days(n: int, start: datetime = JUNE_1) -> Window:
    return Window(start, Binning.DAY, n)


# --- binning, pure ------------------------------------------------------------------------------


def test_events_fall_in_beijing_days_and_hours() -> None:
    window = days(3)
    last_instant_of_june_1 = datetime(2026, 6, 1, 15, 59, 59, 999999, tzinfo=UTC)
    events = [
        (datetime(2026, 5, 31, 16, 0, tzinfo=UTC), "A", 1),  # midnight in Beijing: June 1st
        (last_instant_of_june_1, "A", 2),
        (datetime(2026, 6, 1, 16, 0, tzinfo=UTC), "B", 1),  # June 2nd
        (datetime(2026, 6, 3, 15, 59, tzinfo=UTC), "A", 5),  # the last minute of June 3rd
        (datetime(2026, 6, 3, 16, 0, tzinfo=UTC), "A", 100),  # June 4th: outside
        (datetime(2026, 5, 31, 15, 59, tzinfo=UTC), "B", 100),  # May 31st: outside
    ]
    chart = tally("accepted", events, window)
    assert [(s.key, s.counts) for s in chart.series] == [("A", (3, 0, 5)), ("B", (0, 1, 0))]
    assert chart.totals == (3, 1, 5) and chart.total == 9
    hours = tally("accepted", events[:3], Window(JUNE_1, Binning.HOUR, 24))
    assert hours.series[0].counts[0] == 1 and hours.series[0].counts[23] == 2
    assert hours.window.label(23) == "06-01 23:00" and window.label(2) == "2026-06-03"


def test_an_empty_chart_has_zero_totals() -> None:
    chart = tally("refused", [], days(4))
    assert chart.series == () and chart.totals == (0, 0, 0, 0) and chart.total == 0


def test_the_window_from_the_form() -> None:
    today = date(2026, 6, 14)
    window, errors = parse_window({}, today)
    assert errors == [] and window is not None
    assert (window.start, window.count, window.binning) == (day_start(date(2026, 6, 1)), 14, Binning.DAY)
    window, _ = parse_window({"from": "2026-06-10", "to": "2026-06-11", "bin": "hour"}, today)
    assert window is not None and window.count == 48 and window.end == day_start(date(2026, 6, 12))
    _, errors = parse_window({"from": "2026-06-10", "to": "2026-06-30", "bin": "hour"}, today)
    assert [(e.name, e.key, e.values["bins"]) for e in errors] == [("to", "audit.error.too_many_bins", "504")]
    _, errors = parse_window({"from": "2026-06-10", "to": "2026-06-01"}, today)
    assert [e.key for e in errors] == ["audit.error.range"]
    _, errors = parse_window({"from": "10/06/2026"}, today)
    assert [e.key for e in errors] == ["audit.error.date"]


# --- the figures against the database -----------------------------------------------------------


def stored(session: object, service: str, at: datetime, recipient: str = EDUCATION_DEPARTMENT) -> Message:
    message = Message(
        message_id=str(uuid.uuid4()),
        sender_id=UNIVERSITY,
        recipient_id=recipient,
        service=service,
        service_version="1",
        created_at=at,
        received_at=at,
        size=100,
        body_sha256="0" * 64,
        sealed_envelope=b"<x/>",
        deliveries=[
            Delivery(recipient_id=recipient, mode="push", status="queued", attempts=0, created_at=at, updated_at=at)
        ],
    )
    session.add(message)  # type: ignore[attr-defined]
    return message


def test_the_figures_match_the_store(store_settings: Settings) -> None:
    engine = connect(store_settings.database_url)
    sessions = session_factory(engine)
    window = days(3)
    june = [datetime(2026, 5, 31, 16, 0, tzinfo=UTC) + timedelta(days=d) for d in range(3)]
    with transaction(sessions) as session:
        accepted = [
            ("DestinationRegistration", june[0]),
            ("DestinationRegistration", june[0] + timedelta(hours=23, minutes=59)),  # still June 1st
            ("DestinationRegistration", june[1]),
            ("AgreementOffer", june[2] + timedelta(hours=5)),
            ("AgreementOffer", june[2] + timedelta(days=1)),  # June 4th: outside
            ("FetchMessages", june[1]),  # plumbing: not business volume
        ]
        made = [stored(session, service, at) for service, at in accepted]
        session.flush()
        failing = made[3]
        for kind, at in (
            ("delivery.failed_attempt", june[2] + timedelta(hours=6)),
            ("delivery.failed_attempt", june[2] + timedelta(hours=7)),
            ("delivery.dead_lettered", june[2] + timedelta(hours=8)),
        ):
            facts = {"message_id": failing.message_id, "recipient": EDUCATION_DEPARTMENT, "mode": "push", "error": "x"}
            record(session, AuditEvent(kind, at, dict(facts), failing.message_id))
        for code, service, at in (
            ("SIGNATURE_INVALID", "AgreementOffer", june[0]),
            ("SIGNATURE_INVALID", "DestinationRegistration", june[1]),
            ("XML_MALFORMED", None, june[1]),
            ("ACCESS_DENIED", "AgreementOffer", june[0] - timedelta(seconds=1)),  # May 31st: outside
        ):
            record(session, AuditEvent("message.refused", at, {"code": code, "service": service}))
    with sessions() as session:
        everything = {c.name: c for c in charts(session, window, None)}
        offers = {c.name: c for c in charts(session, window, "AgreementOffer")}
        hourly = charts(session, Window(june[2], Binning.HOUR, 24), None)[0]
    engine.dispose()

    def series(chart: Chart) -> dict[str, tuple[int, ...]]:
        return {s.key: s.counts for s in chart.series}

    assert series(everything["accepted"]) == {"DestinationRegistration": (2, 1, 0), "AgreementOffer": (0, 0, 1)}
    assert series(everything["refused"]) == {"SIGNATURE_INVALID": (1, 1, 0), "XML_MALFORMED": (0, 1, 0)}
    assert series(everything["failed_attempts"]) == {"AgreementOffer": (0, 0, 2)}
    assert series(everything["dead_letters"]) == {"AgreementOffer": (0, 0, 1)}
    assert series(offers["accepted"]) == {"AgreementOffer": (0, 0, 1)}
    assert series(offers["refused"]) == {"SIGNATURE_INVALID": (1, 0, 0)}
    assert series(offers["failed_attempts"]) == {"AgreementOffer": (0, 0, 2)}
    assert {s.key: s.counts[5] for s in hourly.series} == {"AgreementOffer": 1}


# --- the drawing, pure --------------------------------------------------------------------------


def test_nice_ceilings() -> None:
    assert [nice_ceiling(n) for n in (0, 1, 2, 3, 6, 11, 20, 21, 499, 501)] == [1, 1, 2, 5, 10, 20, 20, 50, 500, 1000]


def test_bars_stack_in_proportion_and_carry_their_figures() -> None:
    chart = tally("accepted", [(JUNE_1, "A", 6), (JUNE_1, "B", 4), (JUNE_1 + timedelta(days=1), "A", 5)], days(2))
    drawing = layout(chart, width=400, height=200)
    plot_height = 200 - 8 - 36
    a0, b0, a1 = drawing.segments
    assert a0.height == pytest.approx(plot_height * 6 / 10) and b0.height == pytest.approx(plot_height * 4 / 10)
    assert b0.y + b0.height == pytest.approx(a0.y)  # B sits on A
    assert a0.y + a0.height == pytest.approx(drawing.plot_bottom)
    assert a1.height == pytest.approx(plot_height * 5 / 10) and a1.x > a0.x
    assert a0.title == "2026-06-01 · A: 6" and a1.title == "2026-06-02 · A: 5"
    assert [t.label for t in drawing.y_ticks] == ["0", "5", "10"]
    assert [(item.key, item.total) for item in drawing.legend] == [("A", 11), ("B", 4)]


def test_series_past_the_palette_are_summed_as_other() -> None:
    window = days(1)
    chart = Chart("refused", window, tuple(Series(f"CODE_{i}", (10 - i,)) for i in range(9)))
    drawing = layout(chart)
    assert [item.key for item in drawing.legend][-1] == OTHER
    assert len(drawing.legend) == len(PALETTE) + 1 and drawing.legend[-1].total == 3 + 2
    # one bar of 54 under an axis up to 100
    assert sum(s.height for s in drawing.segments) == pytest.approx((240 - 8 - 36) * 54 / 100)


# --- the page ------------------------------------------------------------------------------------


def test_the_page_draws_each_chart_with_its_table(story_app: Flask, story_auditor: FlaskClient) -> None:
    today = datetime.now(BEIJING).date()
    page = story_auditor.get(f"/audit/charts?from={today}&to={today}&lang=en").get_data(as_text=True)
    assert page.count('<svg viewBox="0 0 720 240" role="img"') == 4
    for name in ("Messages accepted (by service)", "Messages refused (by fault code)", "Dead letters (by service)"):
        assert name in page
    offers = sum(1 for m in messages(story_app) if m.service == "AgreementOffer")
    table = page[page.index("Table of figures") :]
    row = re.search(r"<th scope=\"row\">" + str(today) + r"</th>(.*?)</tr>", table, re.S)
    assert row is not None
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", table, re.S)
    assert header is not None
    keys = re.findall(r'class="number">([^<]+)</th>', header.group(1))
    cells = re.findall(r'class="number">(\d+)</td>', row.group(1))
    assert dict(zip(keys, cells, strict=True))["Employment agreement offer"] == str(offers)
    assert dict(zip(keys, cells, strict=True))["Total"] == str(len(messages(story_app)))
    assert f"AgreementOffer: {offers}" in html.unescape(page)  # the bar's own title


def test_bad_chart_parameters_are_clear_messages(story_auditor: FlaskClient) -> None:
    response = story_auditor.get("/audit/charts?from=2026-01-01&to=2026-03-01&bin=hour&service=Nope&lang=en")
    assert response.status_code == 400
    text = html.unescape(response.get_data(as_text=True))
    assert "at most 400 are drawn" in text and "the gateway has no service “Nope”" in text
    assert "<svg" not in text
