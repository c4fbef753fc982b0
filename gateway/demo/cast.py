"""The cast of the demonstration season: who takes part, and how each receives its messages.

The demonstration participants of ``gateway init --demo`` (``gateway/data/demo-participants.json``)
plus a few more (``gateway/demo/data/season-cast.json``): a second university, agencies in
Shanghai, Guangdong and Sichuan, a hospital, a county government and a foreign-invested firm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from agencies.records import Organisation
from gateway.bootstrap import demo_participant_inputs
from gateway.registry.services import ParticipantInput


@dataclass(frozen=True)
class Member:
    alias: str
    participant: ParticipantInput
    delivery: str  # push | pull

    @property
    def id(self) -> str:
        return self.participant.id

    @property
    def organisation(self) -> Organisation:
        p = self.participant
        return Organisation(p.id, p.name, p.kind, p.region, p.unit_nature)


@dataclass(frozen=True)
class Cast:
    members: dict[str, Member]  # by alias
    data: dict[str, Any]  # the rest of season-cast.json: weights, story, documents

    def __getitem__(self, alias: str) -> Member:
        return self.members[alias]

    def organisation(self, alias: str) -> Organisation:
        return self.members[alias].organisation

    def by_id(self, participant_id: str) -> Member:
        return next(m for m in self.members.values() if m.id == participant_id)

    def of_kind(self, kind: str) -> list[Member]:
        return [m for m in self.members.values() if m.participant.kind == kind]


def load_json(name: str) -> dict[str, Any]:
    text = (resources.files("gateway.demo") / "data" / name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def load_cast() -> Cast:
    """The cast from the package data; raises ``KeyError`` or ``ValueError`` on an inconsistent file."""
    data = load_json("season-cast.json")
    participants = {p.id: p for p in demo_participant_inputs()}
    for row in data["participants"]:
        extra = ParticipantInput(**{**row, "regions_served": tuple(row.get("regions_served", ()))})
        participants[extra.id] = extra
    members: dict[str, Member] = {}
    for alias, participant_id in data["aliases"].items():
        delivery = data["delivery"][alias]
        if delivery not in ("push", "pull"):
            raise ValueError(f"season-cast.json: {alias} is delivered by push or pull, not {delivery!r}")
        members[alias] = Member(alias, replace(participants[participant_id], delivery_mode=delivery), delivery)
    missing = set(participants) - {m.id for m in members.values()}
    if missing:
        raise ValueError(f"season-cast.json: participants without an alias: {sorted(missing)}")
    return Cast(members, data)
