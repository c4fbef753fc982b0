"""The registration rules in one session shared by several messages, as the intake's group commit runs them.

The rules write ``registrations`` with Core statements, past the ORM: a ``Registration`` the session
already holds must not keep the values from before any of those writes. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from lxml import etree
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from gateway.domain.message import DomainMessage, ServiceRules
from gateway.notices.models import Notice
from gateway.privacy import IdentityHasher
from gateway.registrations.models import Registration
from gateway.registrations.rules import (
    DestinationRegistrationRules,
    RegistrationFiledRules,
    RegistrationRejectedRules,
    filed_registration,
)
from gateway.registry.models import Participant
from gateway.registry.snapshot import ParticipantEntry, RegistrySnapshot
from gateway.settings import Settings
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY
from tests.domain.documents import filing, new_graduate, registration

HASHER = IdentityHasher(b"s" * 32)
NOW = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def step(session: Session, settings: Settings, rules: ServiceRules, document: bytes, sender: str) -> None:
    """Check and apply one message's rules in ``session``, as the domain stages do."""
    message = DomainMessage(
        service=etree.QName(etree.fromstring(document)).localname,
        document=etree.fromstring(document),
        sender=ParticipantEntry.of(session.get_one(Participant, sender)),
        recipient=ParticipantEntry.of(
            session.get_one(Participant, UNIVERSITY if sender == EDUCATION_DEPARTMENT else EDUCATION_DEPARTMENT)
        ),
        received_at=NOW,
        message_pk=None,
        hasher=HASHER,
        settings=settings,
    )
    rules.check(message, session)
    rules.apply(message, session)


def rejection(identity_number: str, registration_id: str) -> bytes:
    return (
        '<reg:RegistrationRejected xmlns:reg="urn:gradex:registration:1">'
        f"<reg:RegistrationId>{registration_id}</reg:RegistrationId>"
        f"<reg:IdentityNumber>{identity_number}</reg:IdentityNumber>"
        "<reg:Reason><reg:Code>other</reg:Code><reg:Text>改正</reg:Text></reg:Reason>"
        "<reg:RejectedAt>2025-06-21T09:00:00+08:00</reg:RejectedAt>"
        "</reg:RegistrationRejected>"
    ).encode()


def test_a_registration_the_session_holds_is_read_anew_after_every_step(
    session: Session, store_settings: Settings
) -> None:
    g = new_graduate()
    step(
        session,
        store_settings,
        DestinationRegistrationRules(RegistrySnapshot()),
        registration(g, "REG-SHARED"),
        UNIVERSITY,
    )
    held = session.scalars(select(Registration).where(Registration.registration_id == "REG-SHARED")).one()
    assert (held.status, held.name) == ("registered", g.name)

    step(session, store_settings, RegistrationFiledRules(), filing(g, "REG-SHARED"), EDUCATION_DEPARTMENT)
    assert (held.status, held.transfer_number) == ("filed", g.transfer_number)
    assert filed_registration(session, HASHER(g.identity_number)) is held

    corrected = registration(replace(g, name="改正后"), "REG-SHARED", destination="11")
    step(session, store_settings, DestinationRegistrationRules(RegistrySnapshot()), corrected, UNIVERSITY)
    assert (held.status, held.name, held.destination_code, held.transfer_number) == ("registered", "改正后", "11", None)
    assert filed_registration(session, HASHER(g.identity_number)) is None

    step(
        session,
        store_settings,
        RegistrationRejectedRules(),
        rejection(g.identity_number, "REG-SHARED"),
        EDUCATION_DEPARTMENT,
    )
    assert held.status == "rejected"
    assert session.scalars(select(Registration.id).where(Registration.registration_id == "REG-SHARED")).all() == [
        held.id
    ]


def test_a_registration_is_told_apart_from_its_correction(session: Session, store_settings: Settings) -> None:
    """The notice says whether the university corrected a registration it had sent; on PostgreSQL the
    upsert itself tells (its WITH query reads the table as before it), with no SELECT of its own."""
    g = new_graduate()
    rules = DestinationRegistrationRules(RegistrySnapshot())
    statements: list[str] = []

    def note(_connection: object, _cursor: object, sql: str, *_: object) -> None:
        statements.append(sql)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", note)
    try:
        step(session, store_settings, rules, registration(g, "REG-TOLD"), UNIVERSITY)
        step(session, store_settings, rules, registration(replace(g, name="改正后"), "REG-TOLD"), UNIVERSITY)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    submitted = session.scalars(
        select(Notice.facts).where(Notice.kind == "registration_submitted").order_by(Notice.id)
    ).all()
    assert [json.loads(facts)["corrected"] for facts in submitted] == [False, True]
    touching = [sql for sql in statements if "registrations" in sql]
    assert len(touching) == (2 if engine.dialect.name == "postgresql" else 4), touching
