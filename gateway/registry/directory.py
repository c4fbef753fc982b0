"""The registry as a :class:`gateway.routing.resolve.Directory` over one database session.

The intake resolves through the process's snapshot instead (``gateway.registry.snapshot``), and
the archive rules read the registered employer and the agencies from it too; this one reads the
tables directly (the tests run the directory rules on both).
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from gateway.registry.models import Participant, ServedRegion
from gateway.registry.snapshot import ParticipantEntry


class SqlDirectory:
    def __init__(self, session: Session) -> None:
        self._session = session

    def participant(self, participant_id: str) -> ParticipantEntry | None:
        found = self._session.get(Participant, participant_id)
        return ParticipantEntry.of(found) if found is not None else None

    def responsible_for(self, role: str, region: str) -> list[ParticipantEntry]:
        # A participant that declares the regions it serves is responsible for exactly those;
        # one that declares none is responsible for the region it sits in.
        serves_region = select(ServedRegion.participant_id).where(ServedRegion.region == region)
        declares_any = select(ServedRegion.participant_id).where(ServedRegion.participant_id == Participant.id)
        query = select(Participant).where(
            Participant.kind == role,
            or_(Participant.id.in_(serves_region), and_(Participant.region == region, ~declares_any.exists())),
        )
        return [ParticipantEntry.of(found) for found in self._session.scalars(query)]
