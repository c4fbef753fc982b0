"""Every domain rule of issue 16 through a served gateway, on SQLite and on PostgreSQL.

Each rule has a case the gateway must accept and one it must refuse with its fault, sent as
signed SOAP over HTTP to `gateway serve`. The module's gateway is shared (one per store); each
test uses graduates of its own.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.graduates import accounts
from gateway.grants import services as grants
from gateway.grants.tokens import GrantTokens
from gateway.privacy import IdentityHasher
from gateway.registrations.models import Registration
from tests.conftest import (
    AGENCY_BEIJING,
    AGENCY_CHAOYANG,
    AGENCY_PUDONG,
    EDUCATION_DEPARTMENT,
    HUKOU_OFFICE,
    PRIVATE_EMPLOYER,
    UNIVERSITY,
)
from tests.domain.documents import (
    COMPLETE,
    PRIVATE,
    SOE,
    Employer,
    Graduate,
    directory_update,
    filing,
    manifest,
    new_graduate,
    receipt,
    registration,
    verification_request,
)
from tests.domain.served import DISABLED_AGENCY, NO_RIGHTS_EMPLOYER, ServedGateway, serve_domain

pytestmark = pytest.mark.slow
CHAOYANG = "北京市朝阳区人才服务中心"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gw(
    request: pytest.FixtureRequest, template_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedGateway]:
    yield from serve_domain(request.param, template_home, tmp_path_factory.mktemp(f"domain-{request.param}"))


def filed(gw: ServedGateway, g: Graduate, **registered: object) -> str:
    """Register ``g`` as given and have the department file it; returns the registration id."""
    registration_id = f"REG-T-{g.index:06d}"
    gw.accepted(registration(g, registration_id, **registered), UNIVERSITY, EDUCATION_DEPARTMENT)  # type: ignore[arg-type]
    gw.accepted(filing(g, registration_id), EDUCATION_DEPARTMENT, UNIVERSITY)
    return registration_id


def directory_entry(gw: ServedGateway, participant_id: str) -> dict[str, object]:
    listed = requests.get(f"{gw.base}/directory.json", timeout=10).json()["organisations"]
    found: dict[str, object] = next(o for o in listed if o["credit_code"] == participant_id)
    return found


# --- 1. a participant keeps its own directory entry current --------------------------------------


def test_a_participant_updates_its_own_contact_information(gw: ServedGateway) -> None:
    gw.accepted(
        directory_update(ContactPhone="021-58780001", OpeningHours="周一至周五 9:00-17:00"),
        AGENCY_PUDONG,
        AGENCY_PUDONG,
    )
    contact = directory_entry(gw, AGENCY_PUDONG)["contact"]
    assert contact == {
        "name": "档案服务窗口",
        "phone": "021-58780001",
        "email": None,
        "address": None,
        "opening_hours": "周一至周五 9:00-17:00",
    }
    csv = requests.get(f"{gw.base}/directory.csv", timeout=10).content.decode("utf-8-sig")
    assert "021-58780001" in csv and "周一至周五 9:00-17:00" in csv
    with gw.sessions() as session:
        entries = [
            decode(e) for e in session.scalars(select(AuditEntry.entry).where(AuditEntry.kind == "participant.updated"))
        ]
    phone = next(e for e in entries if e["participant"] == AGENCY_PUDONG and e["field"] == "contact_phone")
    assert (phone["old"], phone["new"], phone["by"], phone["via"]) == (
        "021-58780000",
        "021-58780001",
        AGENCY_PUDONG,
        "DirectoryEntryUpdate",
    )
    # An empty element clears a value.
    gw.accepted(directory_update(OpeningHours=""), AGENCY_PUDONG, AGENCY_PUDONG)
    assert directory_entry(gw, AGENCY_PUDONG)["contact"]["opening_hours"] is None  # type: ignore[index]


def test_nobody_updates_another_entry_or_anything_but_contact_information(gw: ServedGateway) -> None:
    refusal = gw.refused("ACCESS_DENIED", directory_update(ContactPhone="010-1234567"), AGENCY_PUDONG, AGENCY_CHAOYANG)
    assert "R-DIR-1" in refusal and AGENCY_PUDONG in refusal
    gw.refused("SCHEMA_VIOLATION", directory_update(Name="改名"), AGENCY_PUDONG, AGENCY_PUDONG)
    gw.refused("SCHEMA_VIOLATION", directory_update(RegionsServed="310000"), AGENCY_PUDONG, AGENCY_PUDONG)
    gw.refused("SCHEMA_VIOLATION", directory_update(ContactPhone="call us"), AGENCY_PUDONG, AGENCY_PUDONG)
    assert directory_entry(gw, AGENCY_CHAOYANG)["contact"]["phone"] == "010-65090000"  # type: ignore[index]


# --- 2. the registry is the authority on an employer's unit nature -------------------------------


def test_the_registrys_unit_nature_decides(gw: ServedGateway) -> None:
    g = new_graduate()
    gw.accepted(
        registration(g, f"REG-T-{g.index:06d}", employer=SOE, choice="employer", receiver=SOE.credit_code),
        UNIVERSITY,
        EDUCATION_DEPARTMENT,
    )
    mislabelled = Employer(SOE.credit_code, SOE.name, "39", SOE.region)
    refusal = gw.refused(
        "EMPLOYER_UNIT_NATURE_MISMATCH",
        registration(new_graduate(), "REG-T-NATURE", employer=mislabelled),
        UNIVERSITY,
        EDUCATION_DEPARTMENT,
    )
    assert "31" in refusal and "39" in refusal and SOE.credit_code in refusal


# --- 3. archive management rights ----------------------------------------------------------------


def test_an_employer_without_archive_rights_has_its_agency_receive(gw: ServedGateway) -> None:
    g = new_graduate()
    employer = Employer(NO_RIGHTS_EMPLOYER, "示范国有建设有限公司", "31", "110105")
    filed(gw, g, employer=employer, choice="employer", receiver=None)
    refusal = gw.refused(
        "ARCHIVE_RULE_VIOLATION", manifest(g, f"ATM-T-{g.index}", NO_RIGHTS_EMPLOYER), UNIVERSITY, NO_RIGHTS_EMPLOYER
    )
    assert "archive management rights" in refusal and f"only {AGENCY_BEIJING} may receive it" in refusal
    gw.accepted(manifest(g, f"ATM-T-{g.index}", AGENCY_BEIJING, "北京市人才服务中心"), UNIVERSITY, AGENCY_BEIJING)


# --- 4. a personnel archive is never carried by its subject --------------------------------------


def test_never_carried_by_the_graduate_whatever_it_holds(gw: ServedGateway) -> None:
    g = new_graduate()
    filed(gw, g)
    nothing_confidential = tuple((kind, title, False) for kind, title, _ in COMPLETE)
    refusal = gw.refused(
        "ARCHIVE_RULE_VIOLATION",
        manifest(
            g,
            f"ATM-T-{g.index}",
            AGENCY_CHAOYANG,
            CHAOYANG,
            method="carried_by_graduate",
            documents=nothing_confidential,
        ),
        UNIVERSITY,
        AGENCY_CHAOYANG,
    )
    assert "rule dispatch-method" in refusal and "carried_by_graduate" in refusal and "本人自带" in refusal
    gw.accepted(
        manifest(
            g, f"ATM-T-{g.index}", AGENCY_CHAOYANG, CHAOYANG, method="special_personnel", documents=nothing_confidential
        ),
        UNIVERSITY,
        AGENCY_CHAOYANG,
    )


# --- 5. a complete archive -----------------------------------------------------------------------


def test_an_archive_without_the_graduate_registration_form_is_incomplete(gw: ServedGateway) -> None:
    g = new_graduate()
    filed(gw, g)
    without = tuple(d for d in COMPLETE if d[0] != "graduate_registration_form")
    refusal = gw.refused(
        "ARCHIVE_INCOMPLETE",
        manifest(g, f"ATM-T-{g.index}", AGENCY_CHAOYANG, CHAOYANG, documents=without),
        UNIVERSITY,
        AGENCY_CHAOYANG,
    )
    assert "graduate_registration_form" in refusal and "毕业生登记表" in refusal and "transcript" not in refusal
    gw.accepted(manifest(g, f"ATM-T-{g.index}", AGENCY_CHAOYANG, CHAOYANG), UNIVERSITY, AGENCY_CHAOYANG)


# --- 6. targeted training ------------------------------------------------------------------------


def test_a_targeted_graduate_is_registered_to_the_targeted_unit_unless_released(gw: ServedGateway) -> None:
    g = new_graduate()
    refusal = gw.refused(
        "TARGETED_TRAINING_NOT_RELEASED",
        registration(g, f"REG-T-{g.index:06d}", employer=PRIVATE, targeted=SOE),
        UNIVERSITY,
        EDUCATION_DEPARTMENT,
    )
    assert SOE.credit_code in refusal and PRIVATE_EMPLOYER in refusal and "ReleaseReference" in refusal
    # Released: registered like any other graduate, and the archive follows the ordinary rule.
    filed(gw, g, employer=PRIVATE, targeted=SOE, release="JY-DX-2025-0042")
    gw.refused("ARCHIVE_RULE_VIOLATION", manifest(g, f"ATM-T-{g.index}", SOE.credit_code), UNIVERSITY, SOE.credit_code)
    gw.accepted(manifest(g, f"ATM-T-{g.index}", AGENCY_CHAOYANG, CHAOYANG), UNIVERSITY, AGENCY_CHAOYANG)
    # Registered to the targeted unit itself: no release needed, and the unit receives the archive.
    h = new_graduate()
    filed(gw, h, employer=SOE, targeted=SOE, choice="targeted_unit", receiver=SOE.credit_code)
    gw.accepted(manifest(h, f"ATM-T-{h.index}", SOE.credit_code, SOE.name), UNIVERSITY, SOE.credit_code)


# --- 7. one rule for a disabled agency, in routing and in the archive rules ------------------------


def test_a_disabled_agency_is_refused_not_replaced_by_the_level_above(gw: ServedGateway) -> None:
    g = new_graduate()
    filed(gw, g, destination="70", employer=None, household="110106", receiver=None)
    by_role = dict(role="talent_service_agency", region="110106")
    refusal = gw.refused("RECIPIENT_DISABLED", manifest(g, f"ATM-T-{g.index}", DISABLED_AGENCY), UNIVERSITY, **by_role)
    assert DISABLED_AGENCY in refusal and "level above" in refusal
    refusal = gw.refused(
        "ARCHIVE_RULE_VIOLATION", manifest(g, f"ATM-T-{g.index}", AGENCY_BEIJING), UNIVERSITY, AGENCY_BEIJING
    )
    assert DISABLED_AGENCY in refusal and "disabled" in refusal
    # The operator enables it again: read at once, both ways lead to it.
    enabled = gw.cli("participants", "enable", DISABLED_AGENCY)
    assert enabled.returncode == 0, enabled.stderr
    try:
        gw.accepted(manifest(g, f"ATM-T-{g.index}", DISABLED_AGENCY, "北京市丰台区人才服务中心"), UNIVERSITY, **by_role)
    finally:
        assert gw.cli("participants", "disable", DISABLED_AGENCY).returncode == 0


# --- 8. which registration counts; unknown and duplicate transfers; routing header regions -------


def test_the_registration_filed_last_by_the_gateway_counts_not_the_date_inside(gw: ServedGateway) -> None:
    g = new_graduate()
    first, second = f"REG-T-{g.index:06d}A", f"REG-T-{g.index:06d}B"
    gw.accepted(registration(g, first), UNIVERSITY, EDUCATION_DEPARTMENT)
    gw.accepted(registration(g, second, destination="70", employer=None), UNIVERSITY, EDUCATION_DEPARTMENT)
    gw.accepted(
        filing(g, first, "2025-06-25T09:00:00+08:00", "ZDFIRST" + f"{g.index:06d}"), EDUCATION_DEPARTMENT, UNIVERSITY
    )
    # Received later, though it declares an earlier filing date: this one counts.
    gw.accepted(
        filing(g, second, "2025-06-20T09:00:00+08:00", "ZDSECOND" + f"{g.index:06d}"), EDUCATION_DEPARTMENT, UNIVERSITY
    )
    stale = manifest(g, f"ATM-T-{g.index}", AGENCY_CHAOYANG, CHAOYANG, transfer_number="ZDFIRST" + f"{g.index:06d}")
    refusal = gw.refused("REGISTRATION_NOT_FILED", stale, UNIVERSITY, AGENCY_CHAOYANG)
    assert "ZDFIRST" in refusal
    current = manifest(g, f"ATM-T-{g.index}", AGENCY_CHAOYANG, CHAOYANG, transfer_number="ZDSECOND" + f"{g.index:06d}")
    gw.accepted(current, UNIVERSITY, AGENCY_CHAOYANG)


def test_unknown_and_duplicate_archive_transfers_have_their_own_faults(gw: ServedGateway) -> None:
    g = new_graduate()
    filed(gw, g)
    manifest_id = f"ATM-T-{g.index}"
    gw.refused("ARCHIVE_TRANSFER_UNKNOWN", receipt(g, manifest_id), AGENCY_CHAOYANG, UNIVERSITY)
    gw.accepted(manifest(g, manifest_id, AGENCY_CHAOYANG, CHAOYANG), UNIVERSITY, AGENCY_CHAOYANG)
    refusal = gw.refused(
        "ARCHIVE_TRANSFER_DUPLICATE", manifest(g, manifest_id, AGENCY_CHAOYANG, CHAOYANG), UNIVERSITY, AGENCY_CHAOYANG
    )
    assert "already declared" in refusal
    gw.refused(
        "ARCHIVE_TRANSFER_DUPLICATE",
        manifest(g, manifest_id + "B", AGENCY_CHAOYANG, CHAOYANG),
        UNIVERSITY,
        AGENCY_CHAOYANG,
    )
    gw.accepted(receipt(g, manifest_id), AGENCY_CHAOYANG, UNIVERSITY)
    gw.refused("ARCHIVE_TRANSFER_DUPLICATE", receipt(g, manifest_id), AGENCY_CHAOYANG, UNIVERSITY)


def test_concurrent_transfers_of_one_archive_the_database_lets_one_through(gw: ServedGateway) -> None:
    g = new_graduate()
    filed(gw, g)
    outcomes: list[str | None] = []
    lock = threading.Lock()

    def dispatch(n: int) -> None:
        outcome = gw.send(manifest(g, f"ATM-T-{g.index}-{n}", AGENCY_CHAOYANG, CHAOYANG), UNIVERSITY, AGENCY_CHAOYANG)
        with lock:
            outcomes.append(outcome.code)

    threads = [threading.Thread(target=dispatch, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(outcomes) == {None: 1, "ARCHIVE_TRANSFER_DUPLICATE": 3}


def test_the_same_registration_twice_at_once_is_one_registration(gw: ServedGateway) -> None:
    g = new_graduate()
    registration_id = f"REG-T-{g.index:06d}"
    codes: list[str | None] = []

    def register() -> None:
        codes.append(gw.send(registration(g, registration_id), UNIVERSITY, EDUCATION_DEPARTMENT).code)

    threads = [threading.Thread(target=register) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [None, None, None]
    with gw.sessions() as session:
        rows = session.scalars(select(Registration).where(Registration.registration_id == registration_id)).all()
    assert len(rows) == 1


@pytest.mark.parametrize(("region", "why"), [("110103", "withdrawn"), ("990000", "not in the GB/T 2260")])
def test_routing_header_regions_are_gb_t_2260_codes(gw: ServedGateway, region: str, why: str) -> None:
    g = new_graduate()
    filed(gw, g)
    document = manifest(g, f"ATM-T-{g.index}", AGENCY_CHAOYANG, CHAOYANG)
    refusal = gw.refused("CODE_INVALID", document, UNIVERSITY, role="talent_service_agency", region=region)
    assert "routing header" in refusal and why in refusal
    gw.accepted(document, UNIVERSITY, role="talent_service_agency", region="110105")


# --- 9. settlement needs evidence ----------------------------------------------------------------


def test_a_hukou_office_granted_the_employment_evidence_sees_it(gw: ServedGateway) -> None:
    g = new_graduate()
    filed(gw, g)
    hasher = IdentityHasher.from_file(gw.settings.keys_dir / "secrets" / "identity-hash.key")
    tokens = GrantTokens.from_keys_dir(gw.settings.keys_dir, gw.settings.key_passphrase)
    now = datetime.now(UTC)
    with gw.sessions() as session, session.begin():
        account = accounts.activate(
            session, hasher, g.identity_number, g.name, g.verification_number, "a long password 1", now
        )
        granted = grants.create_grant(
            session, tokens, account, HUKOU_OFFICE, ["employment_evidence"], "settlement", None, now
        )
        narrow = grants.create_grant(
            session, tokens, account, HUKOU_OFFICE, ["identity_match"], "settlement", None, now
        )
    answered = gw.send(
        verification_request(g, granted.token, ("employment_evidence",)), HUKOU_OFFICE, EDUCATION_DEPARTMENT
    )
    assert answered.code is None, answered.message
    evidence = answered.body.find(".//{urn:gradex:verification:1}EmploymentEvidence")
    assert evidence is not None
    values = {
        element.tag.split("}")[1]: (element.text or "").strip() for element in evidence.iter() if len(element) == 0
    }
    assert values == {
        "CreditCode": PRIVATE_EMPLOYER,
        "Name": "北京示范科技有限公司",
        "ContractKind": "employment_agreement",
        "ContractReference": "AGR-2025-900001",
        "ContractDate": "2025-05-20",
    }
    assert answered.body.find(".//{urn:gradex:verification:1}Education") is None
    gw.refused(
        "AUTHORISATION_INSUFFICIENT_SCOPE",
        verification_request(g, narrow.token, ("employment_evidence",)),
        HUKOU_OFFICE,
        EDUCATION_DEPARTMENT,
    )
