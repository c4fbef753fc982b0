"""The domain stages of the intake pipeline.

``CheckCodes`` (a CPU check, after the signature, before any transaction): the codes in the
document against their check characters and code lists. ``CheckDomain`` (after the recipient is
resolved, before the message is stored): the access rights, then the service's own rules.
``ApplyDomain`` (after the message is stored, same transaction): the service's effects, and the
index of which graduate the message is about (``gateway.graduates.subjects``, for the graduate's
access history). Services without rules of their own pass through the generic checks only; the
gateway's own plumbing services (mailbox, status) skip all three.

Both run in the group commit's writer thread, each message in a savepoint of the batch's
transaction (``gateway.intake.writer``); what a service's rules may do there is said in
:class:`~gateway.domain.message.ServiceRules`. Their reads and writes are Core statements built
once (a registration, for instance: one SELECT and one upsert, a notice and a subject row), and the
parties and the access overrides come from the registry snapshot, in no query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from gateway.access.policy import AccessPolicy
from gateway.domain.message import DomainMessage, ServiceRules
from gateway.domain.validation import check_codes
from gateway.graduates.subjects import record_subject
from gateway.intake.pipeline import Inbound
from gateway.privacy import IdentityHasher
from gateway.settings import Settings


@dataclass(frozen=True)
class DomainRules:
    """Everything the domain stages need; built once by the app factory."""

    services: Mapping[str, ServiceRules]
    access: AccessPolicy
    hasher: IdentityHasher
    settings: Settings

    def message(self, inbound: Inbound) -> DomainMessage:
        assert inbound.parts is not None and inbound.service is not None
        assert inbound.sender is not None and inbound.recipient is not None
        return DomainMessage(
            service=inbound.service.name,
            document=inbound.parts.document,
            sender=inbound.sender,
            recipient=inbound.recipient,
            received_at=inbound.received_at,
            message_pk=inbound.stored.id if inbound.stored is not None else None,
            hasher=self.hasher,
            settings=self.settings,
            message_id=inbound.message_id,
            client=inbound.client,
        )


class CheckCodes:
    """The document's codes (identity numbers, credit codes, regions, code lists: ``check_codes``).

    CPU work that reads nothing but the document, so it runs with the CPU checks, in the request's
    thread, once the signature has shown whose document it is, rather than in the group commit's
    writer: there it lengthened the serial work that every message of the process, and on SQLite
    of every worker process, waits for (bench/intake/README.md, eighth pass). A message with a bad
    code is therefore refused before the database is asked whether its sender, certificate or
    recipient are known.
    """

    def __call__(self, inbound: Inbound, session: Session) -> None:
        if inbound.service is None or inbound.service.is_plumbing:
            return
        assert inbound.parts is not None
        check_codes(inbound.parts.document)


@dataclass(frozen=True)
class CheckDomain:
    """The access rights, then the service's own rules (the codes were checked before: ``CheckCodes``)."""

    rules: DomainRules

    def __call__(self, inbound: Inbound, session: Session) -> None:
        if inbound.service is not None and inbound.service.is_plumbing:
            return
        message = self.rules.message(inbound)
        self.rules.access.check(message, session)
        service_rules = self.rules.services.get(message.service)
        if service_rules is not None:
            service_rules.check(message, session)


@dataclass(frozen=True)
class ApplyDomain:
    rules: DomainRules

    def __call__(self, inbound: Inbound, session: Session) -> None:
        if inbound.service is not None and inbound.service.is_plumbing:
            return
        message = self.rules.message(inbound)
        service_rules = self.rules.services.get(message.service)
        if service_rules is not None:
            service_rules.apply(message, session)
        record_subject(message, session)
