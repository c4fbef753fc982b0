"""Races the checks cannot see: two transactions at once on the real PostgreSQL, the database decides.

Each test runs the service rules of two messages in two transactions whose checks both pass
(neither sees the other's uncommitted work), then lets the first commit: the second's write meets
the unique constraint or the conditional update, and is refused with the specific fault.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.archives.models import ArchiveTransfer
from gateway.archives.services import ArchiveReceiptRules, ArchiveTransferManifestRules
from gateway.bootstrap import demo_participant_inputs
from gateway.domain.message import DomainMessage, ServiceRules
from gateway.errors import ArchiveTransferDuplicate, RegistrationUnknown
from gateway.privacy import IdentityHasher
from gateway.registrations.models import Registration
from gateway.registrations.rules import DestinationRegistrationRules, RegistrationFiledRules
from gateway.registry.models import Participant
from gateway.registry.services import add_participant
from gateway.registry.snapshot import ParticipantEntry, RegistrySnapshot
from gateway.settings import Settings
from gateway.store.db import connect, migrate, session_factory, transaction
from tests.conftest import AGENCY_CHAOYANG, EDUCATION_DEPARTMENT, UNIVERSITY
from tests.domain.documents import filing, manifest, new_graduate, receipt, registration

HASHER = IdentityHasher(b"r" * 32)
NOW = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def message(
    session: Session, settings: Settings, service: str, document: bytes, sender: str, recipient: str
) -> DomainMessage:
    return DomainMessage(
        service=service,
        document=etree.fromstring(document),
        sender=ParticipantEntry.of(session.get_one(Participant, sender)),
        recipient=ParticipantEntry.of(session.get_one(Participant, recipient)),
        received_at=NOW,
        message_pk=None,
        hasher=HASHER,
        settings=settings,
    )


def accept(
    sessions: Callable[[], Session],
    settings: Settings,
    rules: ServiceRules,
    service: str,
    document: bytes,
    sender: str,
    recipient: str,
) -> None:
    with transaction(sessions) as session:  # type: ignore[arg-type]
        found = message(session, settings, service, document, sender, recipient)
        rules.check(found, session)
        rules.apply(found, session)


def race(
    sessions: Callable[[], Session],
    settings: Settings,
    rules: ServiceRules,
    service: str,
    first: bytes,
    second: bytes,
    sender: str,
    recipient: str,
) -> BaseException | None:
    """Both messages checked in their own transactions; the first applied and committed while the
    second's write waits on it; returns what the second raised."""
    a, b = sessions(), sessions()
    a.begin()
    b.begin()
    first_message = message(a, settings, service, first, sender, recipient)
    second_message = message(b, settings, service, second, sender, recipient)
    rules.check(first_message, a)
    rules.check(second_message, b)  # passes: the first is not written yet
    rules.apply(first_message, a)
    a.flush()
    raised: list[BaseException] = []

    def second_applies() -> None:
        try:
            rules.apply(second_message, b)
            b.flush()
            b.commit()
        except BaseException as exc:
            raised.append(exc)
            b.rollback()

    waiting = threading.Thread(target=second_applies)
    waiting.start()
    waiting.join(timeout=1.0)
    assert waiting.is_alive(), "the second write should wait for the first transaction"
    a.commit()
    waiting.join(timeout=30)
    a.close()
    b.close()
    return raised[0] if raised else None


@pytest.fixture
def pg(postgres_url: str, settings: Settings) -> Iterator[Callable[[], Session]]:
    engine = connect(postgres_url)
    migrate(engine)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        for data in demo_participant_inputs():
            add_participant(session, data, NOW)
    yield sessions
    engine.dispose()


def filed_graduate(sessions: Callable[[], Session], settings: Settings):  # type: ignore[no-untyped-def]
    g = new_graduate()
    accept(
        sessions,
        settings,
        DestinationRegistrationRules(RegistrySnapshot()),
        "DestinationRegistration",
        registration(g, "REG-RACE"),
        UNIVERSITY,
        EDUCATION_DEPARTMENT,
    )
    accept(
        sessions,
        settings,
        RegistrationFiledRules(),
        "RegistrationFiled",
        filing(g, "REG-RACE"),
        EDUCATION_DEPARTMENT,
        UNIVERSITY,
    )
    return g


def test_two_manifests_at_once_open_one_transfer(pg: Callable[[], Session], settings: Settings) -> None:
    g = filed_graduate(pg, settings)
    first = manifest(g, "ATM-RACE-1", AGENCY_CHAOYANG)
    second = manifest(g, "ATM-RACE-2", AGENCY_CHAOYANG)
    raised = race(
        pg,
        settings,
        ArchiveTransferManifestRules(RegistrySnapshot()),
        "ArchiveTransferManifest",
        first,
        second,
        UNIVERSITY,
        AGENCY_CHAOYANG,
    )
    assert isinstance(raised, ArchiveTransferDuplicate), raised
    with transaction(pg) as session:  # type: ignore[arg-type]
        assert [t.manifest_id for t in session.scalars(select(ArchiveTransfer))] == ["ATM-RACE-1"]


def test_two_receipts_at_once_close_the_transfer_once(pg: Callable[[], Session], settings: Settings) -> None:
    g = filed_graduate(pg, settings)
    accept(
        pg,
        settings,
        ArchiveTransferManifestRules(RegistrySnapshot()),
        "ArchiveTransferManifest",
        manifest(g, "ATM-RACE-3", AGENCY_CHAOYANG),
        UNIVERSITY,
        AGENCY_CHAOYANG,
    )
    document = receipt(g, "ATM-RACE-3")
    raised = race(
        pg, settings, ArchiveReceiptRules(), "ArchiveReceipt", document, document, AGENCY_CHAOYANG, UNIVERSITY
    )
    assert isinstance(raised, ArchiveTransferDuplicate), raised


def test_the_same_registration_at_once_is_one_row(pg: Callable[[], Session], settings: Settings) -> None:
    g = new_graduate()
    document = registration(g, "REG-RACE-2")
    later = registration(replace(g, name="改正后"), "REG-RACE-2")
    raised = race(
        pg,
        settings,
        DestinationRegistrationRules(RegistrySnapshot()),
        "DestinationRegistration",
        document,
        later,
        UNIVERSITY,
        EDUCATION_DEPARTMENT,
    )
    assert raised is None  # the upsert waits for the first, then updates its row
    with transaction(pg) as session:  # type: ignore[arg-type]
        [row] = session.scalars(select(Registration).where(Registration.registration_id == "REG-RACE-2"))
        assert row.name == "改正后"


def test_a_filing_checked_before_a_correction_to_another_graduate_is_refused(
    pg: Callable[[], Session], settings: Settings
) -> None:
    g, other = new_graduate(), new_graduate()
    rules = DestinationRegistrationRules(RegistrySnapshot())
    document = registration(g, "REG-RACE-3")
    accept(pg, settings, rules, "DestinationRegistration", document, UNIVERSITY, EDUCATION_DEPARTMENT)
    filing_session = pg()
    filing_session.begin()
    filed = message(
        filing_session, settings, "RegistrationFiled", filing(g, "REG-RACE-3"), EDUCATION_DEPARTMENT, UNIVERSITY
    )
    RegistrationFiledRules().check(filed, filing_session)  # passes: still g's registration
    corrected = registration(other, "REG-RACE-3")
    accept(pg, settings, rules, "DestinationRegistration", corrected, UNIVERSITY, EDUCATION_DEPARTMENT)
    with pytest.raises(RegistrationUnknown, match="REG-RACE-3 is for another graduate"):
        RegistrationFiledRules().apply(filed, filing_session)
    filing_session.rollback()
    filing_session.close()
    with transaction(pg) as session:  # type: ignore[arg-type]
        [row] = session.scalars(select(Registration).where(Registration.registration_id == "REG-RACE-3"))
        assert (row.status, row.identity_hash) == ("registered", HASHER(other.identity_number))
