"""The cast made real: one agency system per member, registered with the gateway, and the operator.

``enrol`` registers the cast as ``gateway init --demo`` registers the demonstration participants
(each with a development key and certificate), the push agencies with the endpoints they serve.
``StoreOperator`` does what ``gateway keys revoke`` and ``gateway keys issue`` do.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.orm import Session, sessionmaker

from agencies.base import PUSH, Agency
from agencies.education_department import EducationDepartment
from agencies.employer import Employer
from agencies.hukou_office import HouseholdRegistrationOffice
from agencies.receiving import ArchiveReceivingUnit
from agencies.talent_agency import TalentServiceAgency
from agencies.university import University
from gateway.bootstrap import InitReport, enrol_participants
from gateway.clock import Clock
from gateway.demo.cast import Cast, Member
from gateway.pki.devca import DevelopmentCA
from gateway.pki.participants import issue_certificate, revoke_certificates
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction


def build_agencies(cast: Cast) -> dict[str, Agency]:
    """One agency system per cast member, by alias."""
    education_department = cast["education_department"].id
    found: dict[str, Agency] = {}
    for alias, member in cast.members.items():
        org, delivery, kind = member.organisation, member.delivery, member.participant.kind
        agency: Agency
        if alias == "university":
            agency = University(org, delivery, education_department)
        elif kind == "education_department":
            agency = EducationDepartment(org, delivery)
        elif kind == "talent_service_agency":
            agency = TalentServiceAgency(org, delivery)
        elif kind == "employer":
            agency = Employer(
                org,
                delivery,
                member.participant.contact_name or "人力资源部",
                member.participant.contact_phone or "010-00000000",
            )
        elif kind == "household_registration_office":
            agency = HouseholdRegistrationOffice(org, delivery)
        else:  # another university: it receives the archives of the graduates it admits or employs
            agency = ArchiveReceivingUnit(org, delivery)
        found[alias] = agency
    return found


def enrol(settings: Settings, clock: Clock, cast: Cast, endpoints: dict[str, str]) -> InitReport:
    """Register the cast with its delivery settings and issue each member a key (as ``init --demo`` does:
    RSA for the demonstration participants, ECDSA P-256 for the season's additions, to show both)."""
    report = InitReport()
    demo_ids = set(cast.data["aliases"].values()) - {row["id"] for row in cast.data["participants"]}

    def with_endpoint(member: Member) -> Member:
        if member.delivery != PUSH:
            return member
        return replace(member, participant=replace(member.participant, endpoint_url=endpoints[member.alias]))

    members = [with_endpoint(m) for m in cast.members.values()]
    engine = connect(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            ca = DevelopmentCA.ensure(settings.keys_dir, clock.now(), settings.key_passphrase)
            for algorithm, chosen in (("rsa", True), ("ec", False)):
                inputs = [m.participant for m in members if (m.id in demo_ids) == chosen]
                enrol_participants(session, settings, ca, clock, inputs, report, algorithm)
    finally:
        engine.dispose()
    return report


class StoreOperator:
    """The operator's key commands, as ``gateway keys revoke`` and ``gateway keys issue`` run them."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._settings = settings
        self._sessions = sessions
        self._clock = clock

    def revoke(self, participant_id: str) -> None:
        with transaction(self._sessions) as session:
            revoke_certificates(session, self._settings, participant_id, self._clock.now())

    def issue(self, participant_id: str) -> None:
        with transaction(self._sessions) as session:
            issue_certificate(session, self._settings, participant_id, self._clock.now(), "ec")
