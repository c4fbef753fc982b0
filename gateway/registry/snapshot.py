"""The registry as each process holds it: who the participants are, whom routing finds, which
certificate is whose, and the access overrides; read in one go, kept until the registry changes.

Every message's intake used to ask the database who its sender is, whom the recipient resolves
to, whether the certificate is the sender's and which overrides apply: four to six queries and
their ORM work, about an eighth of the intake's CPU, for data that changes a few times a day.

A :class:`RegistryView` is that data at one version of the registry, immutable, so threads read it
without a lock. The :class:`RegistrySnapshot` holds a process's newest view. Its
:meth:`~RegistrySnapshot.refresh` reads the registry's version (``registry_version``, one row,
moved by triggers in the transaction of every write that sets a column of
:data:`REGISTRY_COLUMNS`, migration 0013; a participant's new contact details move nothing)
inside the caller's transaction, and reloads, in that same transaction, only when the version
moved. So a check made with the view of a transaction is as current as the transaction itself:
a participant disabled, an override added, a certificate registered or a region reassigned by
a transaction that committed before is seen. The version is read before the tables, so a view
is never older than the version it is labelled with (a write committed during the load may be
in it already, and is loaded again at the next refresh).

A view never goes back: when a transaction reads an older version than the process holds (an
older read snapshot), the newer view is used. A database is restored with the gateway stopped
(docs/operations.md, *Backups*): a restored version may be one a running process has seen.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from gateway.access.models import OVERRIDE_COLUMNS, AccessOverride
from gateway.access.rules import Override
from gateway.registry.models import Participant, ParticipantCertificate, RegistryVersion, ServedRegion


@dataclass(frozen=True, slots=True)
class ParticipantEntry:
    """What the intake and the domain rules read of a participant (the registry row's other
    columns, contacts and delivery settings, are read where they are used)."""

    id: str
    name: str
    kind: str
    region: str
    unit_nature: str | None
    delivery_mode: str
    enabled: bool
    archive_rights: bool
    archive_agency_id: str | None

    @classmethod
    def of(cls, participant: Participant) -> ParticipantEntry:
        """The entry of a registry row loaded through the ORM."""
        return cls(*(getattr(participant, name) for name in _ENTRY_COLUMNS))


_ENTRY_COLUMNS = tuple(ParticipantEntry.__dataclass_fields__)
_P = Participant.__table__.c
_PARTICIPANTS = select(*(_P[name] for name in _ENTRY_COLUMNS))
_SERVED = select(ServedRegion.participant_id, ServedRegion.region)
_CERTIFICATES = select(ParticipantCertificate.fingerprint_sha256, ParticipantCertificate.participant_id)
# Ordered as the override's number: the first one that applies is the one a refusal names.
_OVERRIDES = select(*OVERRIDE_COLUMNS).order_by(AccessOverride.id)
_LOADS = (_PARTICIPANTS, _SERVED, _CERTIFICATES, _OVERRIDES)
_V = RegistryVersion.__table__.c
_VERSION = select(_V.version).where(_V.id == 1)  # run as Core: ~100 Python calls, through the ORM ~160

# The tables a view is made of, and the columns it reads of each: a write that sets any of them
# must move the version (migration 0013's triggers; tests/registry/test_version.py writes each).
REGISTRY_COLUMNS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        table.name: frozenset(column.name for column in load.selected_columns if column.table is table)
        for load in _LOADS
        for table in load.get_final_froms()
        if isinstance(table, Table)
    }
)
REGISTRY_TABLES = frozenset(REGISTRY_COLUMNS)


@dataclass(frozen=True)
class RegistryView:
    """The registry at ``version``: a :class:`gateway.routing.resolve.Directory`, the certificates
    registered to each participant, and each participant's access overrides. Read-only."""

    version: int
    participants: Mapping[str, ParticipantEntry]
    responsible: Mapping[tuple[str, str], tuple[ParticipantEntry, ...]]  # (kind, region) -> who serves it
    certificates: Mapping[str, str]  # SHA-256 fingerprint (hex) -> participant id
    overrides: Mapping[str, tuple[Override, ...]]  # participant id -> its overrides, by number

    def participant(self, participant_id: str) -> ParticipantEntry | None:
        """The participant with this id, enabled or not."""
        return self.participants.get(participant_id)

    def responsible_for(self, role: str, region: str) -> Sequence[ParticipantEntry]:
        """Participants of kind ``role`` that serve exactly ``region`` (or, declaring no regions
        served, sit in it), enabled or not."""
        return self.responsible.get((role, region), ())

    def certificate_holder(self, fingerprint_sha256: str) -> str | None:
        """The participant a certificate (by its SHA-256 fingerprint, hex) is registered to."""
        return self.certificates.get(fingerprint_sha256)

    def overrides_for(self, participant_id: str) -> tuple[Override, ...]:
        return self.overrides.get(participant_id, ())


def load_view(session: Session, version: int) -> RegistryView:
    """The registry tables read in ``session``'s transaction, as the view labelled ``version``."""
    participants = {row.id: ParticipantEntry(*row) for row in session.execute(_PARTICIPANTS)}
    served: dict[str, list[str]] = defaultdict(list)
    for participant_id, region in session.execute(_SERVED):
        served[participant_id].append(region)
    responsible: dict[tuple[str, str], list[ParticipantEntry]] = defaultdict(list)
    for entry in participants.values():
        # A participant that declares the regions it serves is responsible for exactly those;
        # one that declares none is responsible for the region it sits in.
        for region in served.get(entry.id) or (entry.region,):
            responsible[(entry.kind, region)].append(entry)
    certificates = {fingerprint: holder for fingerprint, holder in session.execute(_CERTIFICATES)}
    overrides: dict[str, list[Override]] = defaultdict(list)
    for row in session.execute(_OVERRIDES):
        overrides[row.participant_id].append(Override(*row))
    return RegistryView(
        version=version,
        participants=MappingProxyType(participants),
        responsible=MappingProxyType({key: tuple(found) for key, found in responsible.items()}),
        certificates=MappingProxyType(certificates),
        overrides=MappingProxyType({key: tuple(found) for key, found in overrides.items()}),
    )


class RegistrySnapshot:
    """A process's newest :class:`RegistryView`, brought up to date inside a transaction.

    One per process (the app factory makes it), shared by its threads: a reader takes the view
    without a lock; one thread at a time reloads, and others that need the reload wait for it.
    """

    def __init__(self) -> None:
        self._view: RegistryView | None = None
        self._loading = threading.Lock()

    def refresh(self, session: Session, version: int | None = None) -> RegistryView:
        """The view for ``session``'s transaction: the registry's version read in it (one small
        SELECT), the tables reloaded in it only if that version is newer than the view held.

        ``version``: the registry's version as the caller has just read it in this transaction (the
        intake's batch reads it with its replay look-up, ``gateway.intake.earlier``): no SELECT then.
        Call it once per transaction, before the checks; :meth:`view` gives its answer again.
        """
        session.flush()  # the session's own pending writes first, as any ORM query would (none: a no-op)
        if version is None:
            version = session.connection().execute(_VERSION).scalar_one()
        view = self._view
        if view is None or view.version < version:
            view = self._reload(session, version)
        session.info[self] = (session.get_transaction(), view)
        return view

    def view(self, session: Session) -> RegistryView:
        """The view :meth:`refresh` gave ``session``'s current transaction (refreshing now if it
        gave none): every check of one transaction sees one version of the registry."""
        given = session.info.get(self)
        if given is not None and given[0] is session.get_transaction():
            found: RegistryView = given[1]
            return found
        return self.refresh(session)

    def _reload(self, session: Session, version: int) -> RegistryView:
        with self._loading:
            view = self._view
            if view is not None and view.version >= version:
                return view  # loaded by another thread while this one waited
            view = load_view(session, version)
            self._view = view
            return view
