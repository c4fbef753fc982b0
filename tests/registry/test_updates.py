"""Changing a participant's entry: the operator's command, the registry's rules, the audit entries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit.entries import decode
from gateway.audit.log import sequence
from gateway.audit.models import AuditEntry
from gateway.cli import main
from gateway.errors import ValidationError
from gateway.registry.services import ParticipantInput, add_participant, get_participant
from gateway.registry.updates import CONTACT_FIELDS, ChangedBy, update_participant
from tests.conftest import AGENCY_BEIJING, AGENCY_CHAOYANG, PRIVATE_EMPLOYER, SOE_EMPLOYER, UNIVERSITY

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
BY = ChangedBy("operator tester", "command line")


def updates(session: Session) -> list[dict[str, object]]:
    sequence(session)  # the entries recorded in this open transaction are written at its commit, or now
    rows = session.scalars(select(AuditEntry.entry).where(AuditEntry.kind == "participant.updated"))
    return [decode(row) for row in rows]


def test_each_changed_field_is_an_audit_entry_with_old_and_new_value(session: Session) -> None:
    agency = get_participant(session, AGENCY_CHAOYANG)
    changes = update_participant(
        session,
        agency,
        {
            "contact_phone": "010-65090001",
            "opening_hours": "周一至周五",
            "contact_name": "档案服务窗口",
            "regions_served": ["110105", "110106"],
        },
        BY,
        NOW,
    )
    assert [(c.field, c.old, c.new) for c in changes] == [
        ("contact_phone", "010-65090000", "010-65090001"),
        ("opening_hours", None, "周一至周五"),
        ("regions_served", "110105", "110105;110106"),
    ]  # the unchanged contact name is no change
    assert [(e["field"], e["old"], e["new"], e["by"], e["via"]) for e in updates(session)] == [
        ("contact_phone", "010-65090000", "010-65090001", "operator tester", "command line"),
        ("opening_hours", None, "周一至周五", "operator tester", "command line"),
        ("regions_served", "110105", "110105;110106", "operator tester", "command line"),
    ]
    assert agency.contact_phone == "010-65090001" and [r.region for r in agency.regions_served] == ["110105", "110106"]
    assert agency.updated_at == NOW


def test_a_bad_value_changes_nothing(session: Session) -> None:
    agency = get_participant(session, AGENCY_CHAOYANG)
    with pytest.raises(ValidationError) as raised:
        update_participant(session, agency, {"contact_phone": "call me", "contact_email": "hr@example.cn"}, BY, NOW)
    assert raised.value.field == "contact_phone"
    with pytest.raises(ValidationError, match="at least one region"):
        update_participant(session, agency, {"regions_served": []}, BY, NOW)
    assert agency.contact_phone == "010-65090000" and updates(session) == []


def test_a_participant_itself_changes_only_its_contact_information(session: Session) -> None:
    agency = get_participant(session, AGENCY_CHAOYANG)
    with pytest.raises(ValidationError) as raised:
        update_participant(session, agency, {"regions_served": ["110000"]}, BY, NOW, allowed=CONTACT_FIELDS)
    assert raised.value.field == "regions_served" and "cannot be changed here" in raised.value.rule


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"archive_rights": None}, "archive_rights", "say yes or no"),
        (
            {"archive_rights": True, "archive_agency_id": AGENCY_BEIJING},
            "archive_agency_id",
            "keeps the archives itself",
        ),
        ({"archive_rights": False, "archive_agency_id": UNIVERSITY}, "archive_agency_id", "not a registered talent"),
    ],
)
def test_archive_rights_belong_to_employers_that_keep_archives(
    session: Session, changes: dict[str, object], field: str, rule: str
) -> None:
    soe = get_participant(session, SOE_EMPLOYER)
    with pytest.raises(ValidationError) as raised:
        update_participant(session, soe, changes, BY, NOW)
    assert (raised.value.field, rule in raised.value.rule) == (field, True), raised.value


def test_an_employer_that_comes_to_keep_archives_must_say_whether_it_may(session: Session) -> None:
    private = get_participant(session, PRIVATE_EMPLOYER)
    with pytest.raises(ValidationError, match="say yes or no"):
        update_participant(session, private, {"unit_nature": "31"}, BY, NOW)
    update_participant(session, private, {"unit_nature": "31", "archive_rights": True}, BY, NOW)
    assert (private.unit_nature, private.archive_rights) == ("31", True)
    update_participant(session, private, {"unit_nature": "10"}, BY, NOW)  # still keeps archives: the rights stay
    assert private.archive_rights is True
    update_participant(session, private, {"unit_nature": "39"}, BY, NOW)  # no longer: no rights either
    assert private.archive_rights is False


def test_an_employer_without_rights_names_its_archive_agency(session: Session) -> None:
    soe = get_participant(session, SOE_EMPLOYER)
    update_participant(session, soe, {"archive_rights": False, "archive_agency_id": AGENCY_BEIJING}, BY, NOW)
    assert (soe.archive_rights, soe.archive_agency_id) == (False, AGENCY_BEIJING)
    private = get_participant(session, PRIVATE_EMPLOYER)
    with pytest.raises(ValidationError, match="only state organs"):
        update_participant(session, private, {"archive_rights": True}, BY, NOW)
    with pytest.raises(ValidationError, match="only employers"):
        add_participant(
            session,
            ParticipantInput(
                id="91110000600037341L", name="x", kind="university", region="110105", archive_rights=True
            ),
            NOW,
        )


# --- gateway participants update -------------------------------------------------------------------


@pytest.fixture
def run(home: Path):  # type: ignore[no-untyped-def]
    env = {"GATEWAY_DATA_DIR": str(home / "data"), "GATEWAY_KEYS_DIR": str(home / "keys")}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def test_the_update_command(run) -> None:  # type: ignore[no-untyped-def]
    changed = run(
        "participants", "update", AGENCY_CHAOYANG, "--contact-phone", "010-65090002", "--opening-hours", "周一至周五"
    )
    assert changed.exit_code == 0, changed.output
    assert "contact_phone: 010-65090000 -> 010-65090002" in changed.output
    assert "opening_hours: (none) -> 周一至周五" in changed.output
    assert "2 change(s), each in the audit log" in changed.output
    shown = json.loads(run("participants", "update", AGENCY_CHAOYANG, "--opening-hours", "", "--json").output)
    assert shown["changes"] == [{"field": "opening_hours", "old": "周一至周五", "new": None}]
    assert shown["participant"]["contact"]["phone"] == "010-65090002"
    assert "nothing changed" in run("participants", "update", AGENCY_CHAOYANG, "--contact-phone", "010-65090002").output


def test_the_update_command_refuses_clearly(run) -> None:  # type: ignore[no-untyped-def]
    unknown = run("participants", "update", "91110000600037341L", "--contact-phone", "010-65090002")
    assert unknown.exit_code == 1 and "no participant 91110000600037341L" in unknown.output
    bad = run("participants", "update", AGENCY_CHAOYANG, "--contact-email", "nobody")
    assert bad.exit_code == 1 and "refused: contact_email: must be an e-mail address" in bad.output
    nothing = run("participants", "update", AGENCY_CHAOYANG)
    assert nothing.exit_code == 2 and "say what to change" in nothing.output
    rights = run("participants", "update", SOE_EMPLOYER, "--archive-rights", "no", "--archive-agency", AGENCY_BEIJING)
    assert rights.exit_code == 0, rights.output
    assert (
        "archive_rights: True -> False" in rights.output
        and f"archive_agency_id: (none) -> {AGENCY_BEIJING}" in rights.output
    )
    assert "Traceback" not in unknown.output + bad.output + nothing.output
