"""The participant registry, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from gateway.errors import NotFound, ValidationError
from gateway.registry.services import (
    ParticipantInput,
    add_participant,
    get_participant,
    list_participants,
    participant_as_dict,
    register_certificate,
    set_enabled,
)
from gateway.settings import Settings
from tests.conftest import AGENCY_CHAOYANG, UNIVERSITY

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
EMPLOYER = ParticipantInput(
    id="91110000600037341L",
    name="示范股份有限公司",
    kind="employer",
    region="110105",
    unit_nature="39",
    contact_phone="010-12345678",
    contact_email="hr@example.cn",
)


def test_add_show_list_disable(session: Session) -> None:
    add_participant(session, EMPLOYER, NOW)
    shown = participant_as_dict(get_participant(session, "91110000600037341l"))
    assert shown["name"] == "示范股份有限公司"
    assert shown["unit_nature"] == "39"
    assert shown["delivery_mode"] == "pull"
    assert shown["enabled"] is True
    assert "91110000600037341L" in [p.id for p in list_participants(session, "employer")]
    set_enabled(session, EMPLOYER.id, False, NOW)
    assert get_participant(session, EMPLOYER.id).enabled is False


def test_demo_agency_serves_its_regions(session: Session) -> None:
    agency = get_participant(session, AGENCY_CHAOYANG)
    assert [r.region for r in agency.regions_served] == ["110105"]


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"id": "91110000600037341X"}, "id", "check character"),
        ({"id": "123"}, "id", "18 characters"),
        ({"name": "  "}, "name", "1 to 200"),
        ({"kind": "bank"}, "kind", "must be one of"),
        ({"region": "110103"}, "region", "withdrawn"),
        ({"region": "990000"}, "region", "not in the GB/T 2260"),
        ({"unit_nature": None}, "unit_nature", "needs its unit nature"),
        ({"unit_nature": "77"}, "unit_nature", "not a unit nature code"),
        ({"delivery_mode": "push"}, "endpoint_url", "needs the recipient's endpoint"),
        ({"delivery_mode": "push", "endpoint_url": "ftp://x"}, "endpoint_url", "http or https"),
        ({"endpoint_url": "http://x/soap"}, "endpoint_url", "no endpoint"),
        ({"contact_email": "nobody"}, "contact_email", "e-mail"),
        # Refused by its length before the regular expression backtracks over it (0.8 s before).
        ({"contact_email": "a@" + "." * 4000 + "@"}, "contact_email", "e-mail"),
        ({"contact_phone": "call me"}, "contact_phone", "telephone"),
        ({"kind": "talent_service_agency", "unit_nature": None}, "regions_served", "at least one region"),
        ({"kind": "university", "unit_nature": "39"}, "unit_nature", "only employers"),
        ({"regions_served": ("123",)}, "regions_served", "six digits"),
    ],
)
def test_bad_input_is_refused_naming_field_and_rule(
    session: Session, changes: dict[str, object], field: str, rule: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        add_participant(session, replace(EMPLOYER, **changes), NOW)  # type: ignore[arg-type]
    assert raised.value.field == field
    assert rule in raised.value.rule


def test_taken_id_is_refused(session: Session) -> None:
    with pytest.raises(ValidationError, match="already registered"):
        add_participant(session, replace(EMPLOYER, id=UNIVERSITY), NOW)


def test_unknown_participant(session: Session) -> None:
    with pytest.raises(NotFound):
        get_participant(session, "91110000600037341L")


def test_certificates_register_once_and_to_one_participant(session: Session, store_settings: Settings) -> None:
    pem = (store_settings.keys_dir / "participants" / UNIVERSITY / "cert.pem").read_bytes()
    first = register_certificate(session, UNIVERSITY, pem, NOW)
    again = register_certificate(session, UNIVERSITY, pem, NOW)
    assert first.id == again.id
    assert len(get_participant(session, UNIVERSITY).certificates) == 1
    assert first.not_after > first.not_before
    with pytest.raises(ValidationError, match="already registered to"):
        register_certificate(session, AGENCY_CHAOYANG, pem, NOW)
    with pytest.raises(ValidationError, match="not a PEM"):
        register_certificate(session, UNIVERSITY, b"garbage", NOW)
