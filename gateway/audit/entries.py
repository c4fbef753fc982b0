"""Audit entries: what happened, as canonical bytes that the Merkle tree hashes.

Encoding, version 1 (``docs/audit.md`` documents it for outside verifiers): a JSON object with the
keys sorted, no insignificant white space (separators ``,`` and ``:``), UTF-8, non-ASCII characters
as themselves. Always present: ``"v": 1``, ``"kind"`` (``message.accepted`` …) and ``"at"`` (UTC,
ISO 8601 with microseconds and ``Z``). The other keys are the kind's facts: strings, integers,
booleans or null only. No identity numbers and no payload contents ever enter an entry: digests,
ids and keyed hashes only (``encode`` masks any valid identity number that slips into a value).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from gateway.clock import utc
from gateway.privacy import redact

VERSION = 1
Value = str | int | bool | None


@dataclass(frozen=True)
class AuditEvent:
    kind: str
    at: datetime
    facts: dict[str, Value] = field(default_factory=dict)
    message_id: str | None = None  # for finding a message's story; also inside ``facts``

    def encode(self) -> bytes:
        """The canonical bytes of this entry; raises ``ValueError`` on a fact of a type that may not be logged."""
        body: dict[str, Value] = {
            "v": VERSION,
            "kind": self.kind,
            "at": utc(self.at).isoformat(timespec="microseconds"),
        }
        body["at"] = str(body["at"]).replace("+00:00", "Z")
        for key, value in self.facts.items():
            if key in body:
                raise ValueError(f"audit fact {key!r} is reserved")
            if not isinstance(value, str | int | bool) and value is not None:
                raise ValueError(f"audit fact {key!r} must be a string, integer, boolean or null")
            # Facts are ids and digests; an identity number that slips into one (quoted in an error
            # text, say) is masked rather than refused, so that recording can never fail the event.
            body[key] = redact(value) if isinstance(value, str) else value
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(entry: bytes) -> dict[str, Value]:
    """The facts of an encoded entry (for display and verification)."""
    data: dict[str, Value] = json.loads(entry.decode("utf-8"))
    return data
