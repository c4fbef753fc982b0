"""Destination registrations and their filing, and the code checks on documents."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from gateway.privacy import IdentityHasher
from gateway.registrations.models import Registration
from gateway.registry.models import Participant
from gateway.settings import Settings
from gateway.store.db import transaction
from tests.conftest import EDUCATION_DEPARTMENT, PRIVATE_EMPLOYER, UNIVERSITY, Signer, example
from tests.domain.helpers import replace_text, send

IDENTITY = "11010520030315041X"


def registrations(app: Flask) -> list[Registration]:
    with transaction(app.extensions["gateway"].sessions) as session:
        return list(session.scalars(select(Registration)))


def test_registration_then_filing_keeps_the_facts_under_a_keyed_hash(
    client: FlaskClient, app: Flask, sign: Signer, settings: Settings
) -> None:
    assert send(client, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)[0] is None
    [registered] = registrations(app)
    assert registered.status == "registered"
    assert registered.destination_code == "10" and registered.employer_id == PRIVATE_EMPLOYER
    assert registered.archive_receiver_choice == "agency_at_household" and registered.household_region == "110105"
    hasher = IdentityHasher.from_file(settings.keys_dir / "secrets" / "identity-hash.key")
    assert registered.identity_hash == hasher(IDENTITY) != IDENTITY
    assert IDENTITY not in repr([getattr(registered, c.key) for c in Registration.__table__.columns])
    assert send(client, sign, "registration-filed", EDUCATION_DEPARTMENT, UNIVERSITY)[0] is None
    [filed] = registrations(app)
    assert (filed.status, filed.transfer_number, filed.verification_number) == (
        "filed",
        "ZD11000020250001234",
        "HY2025BJ7Q4K9M3T",
    )


def test_filing_an_unknown_registration_or_another_graduates_is_refused(
    client: FlaskClient, app: Flask, sign: Signer
) -> None:
    code, message = send(client, sign, "registration-filed", EDUCATION_DEPARTMENT, UNIVERSITY)
    assert code == "REGISTRATION_UNKNOWN" and "REG-2025-000123" in message
    assert send(client, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)[0] is None
    other = replace_text(example("registration-filed"), "reg:IdentityNumber", "11010519491231002X")
    assert send(client, sign, other, EDUCATION_DEPARTMENT, UNIVERSITY)[0] == "REGISTRATION_UNKNOWN"
    assert registrations(app)[0].status == "registered"


def test_rejection_and_a_corrected_registration(client: FlaskClient, app: Flask, sign: Signer) -> None:
    first = replace_text(example("destination-registration"), "reg:RegistrationId", "REG-2025-000120")
    assert send(client, sign, first, UNIVERSITY, EDUCATION_DEPARTMENT)[0] is None
    assert send(client, sign, "registration-rejected", EDUCATION_DEPARTMENT, UNIVERSITY)[0] is None
    assert [r.status for r in registrations(app)] == ["rejected"]
    corrected = replace_text(first, "reg:DestinationCode", "11")
    assert send(client, sign, corrected, UNIVERSITY, EDUCATION_DEPARTMENT)[0] is None
    [again] = registrations(app)
    assert (again.status, again.destination_code) == ("registered", "11")


def test_codes_in_documents_are_checked(client: FlaskClient, sign: Signer) -> None:
    document = example("destination-registration")
    cases = {
        "IdentityNumber": replace_text(document, "c:IdentityNumber", "110105200303150410"),  # wrong check digit
        "CreditCode": replace_text(document, "c:CreditCode", "91110108500000006X"),
        "HouseholdRegion": replace_text(document, "reg:HouseholdRegion", "110103"),  # withdrawn in 2010
        "DestinationCode": replace_text(document, "reg:DestinationCode", "99"),
        "UnitNature": replace_text(document, "c:UnitNature", "77"),
    }
    for element, variant in cases.items():
        code, message = send(client, sign, variant, UNIVERSITY, EDUCATION_DEPARTMENT)
        assert code == "CODE_INVALID", element
        assert element in message and "line " in message
        assert "110105200303150410" not in message


def test_an_employers_unit_nature_changed_in_the_registry_counts_for_the_next_registration(
    client: FlaskClient, app: Flask, sign: Signer
) -> None:
    # The rules read the employer from the process's registry snapshot: a change must reach it.
    assert send(client, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)[0] is None
    with transaction(app.extensions["gateway"].sessions) as session:
        session.get_one(Participant, PRIVATE_EMPLOYER).unit_nature = "31"
    again = replace_text(example("destination-registration"), "reg:RegistrationId", "REG-2025-000124")
    code, message = send(client, sign, again, UNIVERSITY, EDUCATION_DEPARTMENT)
    assert code == "EMPLOYER_UNIT_NATURE_MISMATCH"
    assert f"employer {PRIVATE_EMPLOYER}" in message and "unit nature 31" in message and "declares 39" in message


def test_a_filing_reads_and_writes_its_registration_in_one_statement(
    client: FlaskClient, app: Flask, sign: Signer
) -> None:
    """The UPDATE checks what a SELECT before it checked (sent to this department, this graduate's):
    one statement a filing in the group commit's serial part, not two."""
    assert send(client, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)[0] is None
    engine = app.extensions["gateway"].engine
    statements: list[str] = []

    def note(_connection: object, _cursor: object, sql: str, *_: object) -> None:
        statements.append(sql)

    event.listen(engine, "before_cursor_execute", note)
    try:
        assert send(client, sign, "registration-filed", EDUCATION_DEPARTMENT, UNIVERSITY)[0] is None
    finally:
        event.remove(engine, "before_cursor_execute", note)
    touching = [sql for sql in statements if "registrations" in sql]
    assert len(touching) == 1 and touching[0].startswith("UPDATE registrations"), touching
    assert registrations(app)[0].status == "filed"
