"""Searching messages: the form's checks (pure), every filter against real accepted messages, and the
identity number that never appears in a URL, a page or a log line."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.auditor.forms import Invalid
from gateway.auditor.search import Criteria, graduate_hash, parse_criteria, search
from gateway.clock import BEIJING
from gateway.privacy import IdentityHasher
from tests.auditor.helpers import GRADUATE_A, GRADUATE_B, NOBODY, messages
from tests.conftest import HUKOU_OFFICE, SOE_EMPLOYER, UNIVERSITY
from tests.web.helpers import csrf_token

SERVICES = ["AgreementOffer", "DestinationRegistration"]
KNOWN = {UNIVERSITY, SOE_EMPLOYER}


def parse(**fields: str) -> tuple[Criteria | None, list[tuple[str, str]]]:
    parsed = parse_criteria(fields, SERVICES, KNOWN.__contains__)
    return parsed.criteria, [(e.name, e.key) for e in parsed.errors]


# --- the form, pure ---------------------------------------------------------------------------


def test_an_empty_form_is_a_search_for_everything() -> None:
    criteria, errors = parse()
    assert errors == [] and criteria == Criteria()
    assert criteria.is_empty


def test_dates_are_whole_beijing_days() -> None:
    criteria, errors = parse(**{"from": "2026-06-01", "to": "2026-06-02"})
    assert errors == [] and criteria is not None
    assert criteria.since == datetime(2026, 5, 31, 16, tzinfo=UTC)
    assert criteria.until == datetime(2026, 6, 2, 16, tzinfo=UTC)  # the end of June 2nd, Beijing time
    assert criteria.since.astimezone(BEIJING).hour == 0


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"from": "2026-13-01"}, ("from", "audit.error.date")),
        ({"to": "yesterday"}, ("to", "audit.error.date")),
        ({"from": "2026-06-02", "to": "2026-06-01"}, ("to", "audit.error.range")),
        ({"service": "NoSuchService"}, ("service", "audit.error.service")),
        ({"status": "lost"}, ("status", "audit.error.status")),
        ({"participant": "12345"}, ("participant", "audit.error.participant_code")),
        ({"participant": "91110000600037341L"}, ("participant", "audit.error.participant_unknown")),
        ({"message_id": "not-a-uuid"}, ("message_id", "audit.error.message_id")),
    ],
)
def test_each_bad_input_is_named(fields: dict[str, str], error: tuple[str, str]) -> None:
    criteria, errors = parse(**fields)
    assert criteria is None
    assert errors == [error]


def test_every_bad_field_is_reported_at_once() -> None:
    _, errors = parse(**{"from": "x", "service": "y", "message_id": "z"})
    assert [name for name, _ in errors] == ["from", "service", "message_id"]


def test_values_are_normalised() -> None:
    criteria, _ = parse(participant=" 12110108400000008j ", message_id=" 0F5E3C8A-1B2C-4D5E-8F90-123456789ABC ")
    assert criteria is not None
    assert criteria.participant == UNIVERSITY
    assert criteria.message_id == "0f5e3c8a-1b2c-4d5e-8f90-123456789abc"


@pytest.mark.parametrize(
    ("number", "key"),
    [
        ("1101052003031504", "audit.error.identity_length"),
        ("1101052003031504AX", "audit.error.identity_format"),
        ("110105200313150413", "audit.error.identity_component"),  # month 13, with a right check digit
        ("110105200303150410", "audit.error.identity_checksum"),
    ],
)
def test_a_malformed_identity_number_is_refused_without_echoing_it(number: str, key: str) -> None:
    hasher = IdentityHasher(b"k" * 32)
    with pytest.raises(Invalid) as refused:
        graduate_hash(number, hasher)
    assert refused.value.error.key == key
    assert number not in str(refused.value) and number not in str(refused.value.error)


def test_an_identity_number_becomes_its_keyed_hash() -> None:
    hasher = IdentityHasher(b"k" * 32)
    assert graduate_hash(f" {GRADUATE_B.lower()} ", hasher) == hasher(GRADUATE_B)


# --- against the store ------------------------------------------------------------------------


@pytest.fixture
def story(story_app: Flask) -> Flask:
    return story_app


@pytest.fixture
def auditor(story_auditor: FlaskClient) -> FlaskClient:
    return story_auditor


def listed(page: str) -> list[str]:
    """The message ids a result page lists."""
    return re.findall(r'/audit/messages/\d+">([0-9a-f-]{36})<', page)


def search_for_graduate(client: FlaskClient, number: str, **fields: str) -> tuple[str, str]:
    """POST the form with an identity number; returns (the redirect's location, the results page)."""
    token = csrf_token(client, "/audit/")
    response = client.post("/audit/", data={"csrf_token": token, "identity_number": number, **fields})
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    page = client.get(location)
    assert page.status_code == 200
    return location, page.get_data(as_text=True)


def test_a_graduate_is_found_by_identity_number_and_never_shown(
    story: Flask, auditor: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    everything = messages(story)
    about_a = {m.message_id for m in everything[:-1]}
    location, page = search_for_graduate(auditor, GRADUATE_A)
    assert set(listed(page)) == about_a  # the whole story, and not graduate B's registration
    assert everything[-1].message_id not in page
    assert "REG-2025-000123" in page  # the registration the number matched
    for text in (location, page, caplog.text):
        assert GRADUATE_A not in text
        assert GRADUATE_A[:-1] not in text  # not even without its check character
    _, page_b = search_for_graduate(auditor, GRADUATE_B)
    assert listed(page_b) == [everything[-1].message_id]
    assert "REG-2025-000999" in page_b and "REG-2025-000123" not in page_b


def test_the_keyed_hash_is_not_in_the_url_or_the_page_either(story: Flask, auditor: FlaskClient) -> None:
    hasher = IdentityHasher.from_file(story.extensions["gateway"].settings.keys_dir / "secrets" / "identity-hash.key")
    location, page = search_for_graduate(auditor, GRADUATE_A)
    assert hasher(GRADUATE_A) not in location and hasher(GRADUATE_A) not in page
    assert re.search(r"graduate=[A-Za-z0-9_-]{16}", location)


def test_a_graduate_the_gateway_never_saw_has_no_messages(story: Flask, auditor: FlaskClient) -> None:
    _, page = search_for_graduate(auditor, NOBODY)
    assert listed(page) == []
    assert NOBODY not in page


def test_a_malformed_identity_number_is_a_clear_message_and_is_not_echoed(story: Flask, auditor: FlaskClient) -> None:
    token = csrf_token(auditor, "/audit/?lang=en")
    bad = GRADUATE_A[:-1] + "0"
    response = auditor.post("/audit/", data={"csrf_token": token, "identity_number": bad, "service": "Nope"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "the check character of the identity number is wrong" in page
    assert "the gateway has no service “Nope”" in page
    assert bad not in page and bad[:-1] not in page


def test_the_graduate_filter_combines_with_the_others(story: Flask, auditor: FlaskClient) -> None:
    _, page = search_for_graduate(auditor, GRADUATE_A, service="ArchiveReceipt")
    receipts = [m.message_id for m in messages(story) if m.service == "ArchiveReceipt"]
    assert listed(page) == receipts


def test_an_expired_graduate_reference_is_said_so(story: Flask, auditor: FlaskClient) -> None:
    response = auditor.get("/audit/?graduate=abcdefghijklmnop&lang=en")
    assert response.status_code == 400
    assert "the search for a graduate has expired" in response.get_data(as_text=True)
    assert listed(response.get_data(as_text=True)) == []


def test_filters_by_service_participant_status_and_message_id(story: Flask, auditor: FlaskClient) -> None:
    everything = messages(story)
    offers = [m.message_id for m in reversed(everything) if m.service == "AgreementOffer"]
    assert listed(auditor.get("/audit/?service=AgreementOffer").get_data(as_text=True)) == offers
    with_soe = [m.message_id for m in reversed(everything) if SOE_EMPLOYER in (m.sender_id, m.recipient_id)]
    assert listed(auditor.get(f"/audit/?participant={SOE_EMPLOYER}").get_data(as_text=True)) == with_soe
    from_hukou = [m.message_id for m in everything if HUKOU_OFFICE in (m.sender_id, m.recipient_id)]
    assert listed(auditor.get(f"/audit/?participant={HUKOU_OFFICE}").get_data(as_text=True)) == from_hukou
    # every delivery of the story (all pull) waits in a mailbox: queued, none delivered; the
    # verification request has no delivery (the gateway answered it itself)
    delivered_ones = [m for m in everything if m.service != "GraduateVerificationRequest"]
    assert len(listed(auditor.get("/audit/?status=queued").get_data(as_text=True))) == min(25, len(delivered_ones))
    assert listed(auditor.get("/audit/?status=delivered").get_data(as_text=True)) == []
    one = everything[3]
    assert listed(auditor.get(f"/audit/?message_id={one.message_id.upper()}").get_data(as_text=True)) == [
        one.message_id
    ]


def test_time_range_in_beijing_days(story: Flask, auditor: FlaskClient) -> None:
    today = datetime.now(BEIJING).date()
    count = len(messages(story))
    page = auditor.get(f"/audit/?from={today}&to={today}").get_data(as_text=True)
    assert f"{count} " in page or f"共 {count} 条" in page
    tomorrow = today + timedelta(days=1)
    assert listed(auditor.get(f"/audit/?from={tomorrow}").get_data(as_text=True)) == []
    assert listed(auditor.get(f"/audit/?to={today - timedelta(days=1)}").get_data(as_text=True)) == []


def test_bad_input_in_the_url_is_a_clear_message(story: Flask, auditor: FlaskClient) -> None:
    response = auditor.get("/audit/?from=2026-02-30&status=lost&lang=en")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "“2026-02-30” is not a date" in page
    assert "there is no delivery status “lost”" in page
    assert listed(page) == []


def test_results_are_paged_newest_first(story: Flask) -> None:
    everything = messages(story)
    newest_first = [m.message_id for m in sorted(everything, key=lambda m: (m.received_at, m.id), reverse=True)]
    with story.extensions["gateway"].sessions() as session:
        pages = [search(session, Criteria(page=n), page_size=5) for n in (1, 2, 3, 4, 5)]
    assert pages[0].total == len(everything) == 17 and pages[0].pages == 4
    assert [m.message_id for p in pages for m in p.messages] == newest_first
    assert pages[4].messages == []


def test_the_page_links_keep_the_criteria_and_the_graduate(
    story: Flask, auditor: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.auditor import search as search_module

    monkeypatch.setattr(search_module, "PAGE_SIZE", 5)
    _, page = search_for_graduate(auditor, GRADUATE_A)
    seen = listed(page)
    while (following := re.search(r'rel="next" href="([^"]+)"', page)) is not None:
        link = following.group(1).replace("&amp;", "&")
        assert "graduate=" in link and GRADUATE_A not in link
        page = auditor.get(link).get_data(as_text=True)
        seen += listed(page)
    assert len(seen) == 16 and set(seen) == {m.message_id for m in messages(story)[:-1]}


def test_the_form_without_an_identity_number_leads_to_a_plain_url(story: Flask, auditor: FlaskClient) -> None:
    token = csrf_token(auditor, "/audit/")
    response = auditor.post(
        "/audit/", data={"csrf_token": token, "service": "AgreementOffer", "participant": SOE_EMPLOYER, "to": ""}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/audit/?participant={SOE_EMPLOYER}&service=AgreementOffer"
