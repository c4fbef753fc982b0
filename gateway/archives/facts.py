"""What the archive rules read from the store: the filed registration, the registry's employer, the agencies.

The registry is read through a :class:`~gateway.routing.resolve.Directory`: in the intake, the
registry snapshot of the message's transaction (``gateway.registry.snapshot``, in no query). The
pure rules themselves are :mod:`gateway.archives.rules`.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.archives.rules import Agency, RegisteredEmployer, RegistrationFacts
from gateway.codes.lists import code_list
from gateway.registrations.models import Registration
from gateway.registry.models import ParticipantKind
from gateway.routing.resolve import Directory


class RegistryAgencies:
    """:class:`~gateway.archives.rules.AgencyDirectory` over the registry: talent service agencies,
    enabled or not (the rules refuse a disabled one where they point)."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory

    def talent_agencies(self, region: str) -> Sequence[Agency]:
        found = self._directory.responsible_for(ParticipantKind.TALENT_SERVICE_AGENCY, region)
        return [Agency(p.id, p.enabled) for p in found]


def registered_employer(directory: Directory, employer_id: str | None) -> RegisteredEmployer | None:
    """What the registry records of ``employer_id``, when it is registered as an employer."""
    if employer_id is None:
        return None
    employer = directory.participant(employer_id)
    if employer is None or employer.kind != ParticipantKind.EMPLOYER or employer.unit_nature is None:
        return None
    agency = directory.participant(employer.archive_agency_id) if employer.archive_agency_id else None
    return RegisteredEmployer(
        id=employer.id,
        unit_nature=employer.unit_nature,
        archive_rights=employer.archive_rights,
        archive_agency=Agency(agency.id, agency.enabled) if agency is not None else None,
    )


def registration_facts(record: Registration, employer: RegisteredEmployer | None = None) -> RegistrationFacts:
    """What the archive rules need of ``record``, with its codes looked up in the code lists.

    ``employer`` is the registry's word on the employer the registration names: its unit nature
    decides whether the employer keeps archives (the registration's only when it is not registered).
    A released targeted-training agreement no longer sends the archive to the targeted unit.
    """
    destination = code_list("destination-codes")[record.destination_code]
    nature_code = employer.unit_nature if employer is not None else record.employer_unit_nature
    nature = code_list("unit-nature-codes").get(nature_code or "")
    return RegistrationFacts(
        destination_code=record.destination_code,
        destination_parent=destination["parent"] or None,
        destination_category=destination["category"],
        household_region=record.household_region,
        archive_receiver_choice=record.archive_receiver_choice,
        archive_receiver_id=record.archive_receiver_id,
        employer_id=record.employer_id,
        employer_unit_nature=nature_code,
        employer_keeps_archive=nature is not None and nature["archive_to_employer"] == "yes",
        employer_region=record.employer_region,
        targeted_unit_id=None if record.targeted_release_reference else record.targeted_unit_id,
        admitting_institution_id=record.admitting_institution_id,
        registered_employer=employer,
    )
