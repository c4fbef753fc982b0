"""The access-rights matrix (``schemas/access-rights.csv``) and the decision, as pure functions.

A message is allowed when a matrix rule lets the sender's kind send the service to the recipient's
kind under the rule's condition, or a per-participant grant allows it; a per-participant denial
beats both. Every decision names the rule or override it rests on.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gateway.errors import ConfigurationError
from gateway.settings import SCHEMAS_DIR

CONDITIONS = ("any", "same_province", "own_entry")
MATRIX_FILE = SCHEMAS_DIR / "access-rights.csv"


@dataclass(frozen=True)
class Rule:
    rule: str
    service: str
    sender_kinds: frozenset[str]
    recipient_kinds: frozenset[str]
    condition: str
    description: str

    def matches(self, service: str, sender_kind: str, recipient_kind: str) -> bool:
        return service == self.service and sender_kind in self.sender_kinds and recipient_kind in self.recipient_kinds


@dataclass(frozen=True)
class Party:
    id: str
    kind: str
    region: str


@dataclass(frozen=True)
class Override:
    id: int
    participant_id: str
    service: str
    counterpart_id: str | None
    effect: str  # grant | deny
    reason: str

    def applies(self, service: str, sender: Party, recipient: Party) -> bool:
        return (
            self.participant_id == sender.id
            and self.service in (service, "*")
            and self.counterpart_id in (None, recipient.id)
        )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def condition_holds(condition: str, sender: Party, recipient: Party) -> bool:
    if condition == "any":
        return True
    if condition == "same_province":
        return sender.region[:2] == recipient.region[:2]
    if condition == "own_entry":  # a participant changes its own directory entry, nobody else's
        return sender.id == recipient.id
    raise ConfigurationError(f"unknown access condition {condition!r}")


def decide(
    rules: Sequence[Rule], overrides: Sequence[Override], service: str, sender: Party, recipient: Party
) -> Decision:
    """Whether ``sender`` may send ``service`` to ``recipient``, and why."""
    for override in overrides:
        if override.effect == "deny" and override.applies(service, sender, recipient):
            return Decision(False, f"denied by access override #{override.id} ({override.reason})")
    for override in overrides:
        if override.effect == "grant" and override.applies(service, sender, recipient):
            return Decision(True, f"granted by access override #{override.id} ({override.reason})")
    candidates = [r for r in rules if r.service == service]
    for rule in candidates:
        if rule.matches(service, sender.kind, recipient.kind):
            if condition_holds(rule.condition, sender, recipient):
                return Decision(True, f"rule {rule.rule}")
            if rule.condition == "own_entry":
                return Decision(
                    False,
                    f"rule {rule.rule}: {service} changes the sender's own entry only; address it to your own "
                    f"participant id {sender.id}, not {recipient.id}",
                )
            return Decision(
                False,
                f"rule {rule.rule} lets {a_kind(sender.kind)} send {service} to {a_kind(recipient.kind)} only when "
                f"{rule.condition.replace('_', ' ')} "
                f"({sender.id} is in {sender.region}, {recipient.id} in {recipient.region})",
            )
    allowed = "; ".join(
        f"{r.rule}: {'|'.join(sorted(r.sender_kinds))} -> {'|'.join(sorted(r.recipient_kinds))}" for r in candidates
    )
    return Decision(
        False,
        f"no rule lets {a_kind(sender.kind)} send {service} to {a_kind(recipient.kind)}"
        + (f" (rules for {service}: {allowed})" if allowed else f" (no rule names {service})"),
    )


def a_kind(kind: str) -> str:
    """A participant kind in words, with its article: ``employer`` -> "an employer"."""
    words = kind.replace("_", " ")
    # "a university": the kinds starting with a "u" say "you".
    return f"{'an' if words[:1] in ('a', 'e', 'i', 'o') else 'a'} {words}"


@cache
def load_rules(path: Path = MATRIX_FILE) -> tuple[Rule, ...]:
    """The matrix from its CSV file; raises :class:`ConfigurationError` naming a bad row."""
    from gateway.registry.models import ParticipantKind

    kinds = {k.value for k in ParticipantKind}
    rules = []
    with path.open(encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            senders = frozenset(row["sender_kinds"].split("|"))
            recipients = frozenset(row["recipient_kinds"].split("|"))
            if not senders <= kinds or not recipients <= kinds:
                raise ConfigurationError(f"{path.name} line {line}: unknown participant kind in {row['rule']}")
            if row["condition"] not in CONDITIONS:
                raise ConfigurationError(f"{path.name} line {line}: condition must be one of {', '.join(CONDITIONS)}")
            rules.append(Rule(row["rule"], row["service"], senders, recipients, row["condition"], row["description"]))
    return tuple(rules)
