"""The intake pipeline: a message passes through stages, each of which may refuse it with a Fault.

    parse -> envelope -> schema -> service -> signature -> codes  (CPU only, the request's thread)
          -> sender -> certificate registered, replay -> recipient -> domain check
          -> store -> domain effects -> plumbing answer -> verification answer
                                                   (the writer's thread: a savepoint of a batch)
          -> the batch's log positions -> receipt signed and kept -> (the batch's commit)

A business document is stored with its delivery and earns a signed receipt. A graduate
verification request is stored without a delivery: the gateway answers it itself, with the
signed facts and the receipt (``gateway.grants.answer``). A plumbing service
(``Service.is_plumbing``: mailbox fetch and acknowledge, message status, delivery receipt) is
addressed to the sender's own participant id, skips the domain stages, is stored without a
delivery (as evidence, and so that replays are refused) and is answered by the plumbing stage.

A stage is any callable ``stage(inbound, session)``. The CPU checks (parse, envelope, schema,
service, signature, the document's codes) run first, in the request's own thread, and get no session at all
(``NO_DATABASE``): a malformed or forged message costs no database work and holds no lock. The
database stages of one message then run in the process's group commit
(``gateway.intake.writer.BatchWriter``): with the database stages of the other messages that arrived
meanwhile, in one transaction, each in a savepoint of its own, so a message is stored whole or not
at all and a refused one is rolled back alone. Who the sender and the recipient are, whose the
certificate is and which access overrides apply is read from the process's registry snapshot
(``gateway.registry.snapshot``), brought up to date once per batch by reading the registry's
version in the batch's transaction (on PostgreSQL by the batch's replay look-up,
``gateway.intake.earlier``, when the pipeline is given the ``registry``). Inside the transaction
there is only database work, and the receipts' signatures: the audit log's counter row is taken
once per batch, just before its commit (``gateway.audit.log.sequence``), and each accepted
message's receipt, which names its place in the log, is signed then and stored with it. With
``defer_indexes`` (an option on PostgreSQL) the batch takes no counter at all: the receipt is
signed after the commit and kept in the writer's next batch (``Pipeline``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, cast

from lxml import etree
from sqlalchemy import Engine, Table, insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.entries import AuditEvent
from gateway.audit.log import PositionWaiter, RecordedEntry, index_at_commit, record, sequence, sequence_pending
from gateway.audit.log import defer_indexes as _defer_indexes
from gateway.errors import (
    DatabaseUnavailable,
    DuplicateMessage,
    Fault,
    PlumbingRecipient,
    SchemaViolation,
    SenderDisabled,
    ServiceMismatch,
    UnknownSender,
    UnknownService,
)
from gateway.intake.catalog import Service, ServiceCatalog
from gateway.intake.earlier import look_ahead
from gateway.intake.envelope import EnvelopeParts, Routing, read_routing, split_envelope
from gateway.intake.writer import BatchWriter, Work
from gateway.messages.models import Delivery, Message
from gateway.messages.payloads import ENVELOPE, PayloadCipher, Sealed
from gateway.registry.models import DeliveryMode
from gateway.registry.snapshot import ParticipantEntry, RegistrySnapshot
from gateway.routing.resolve import resolve_recipient
from gateway.store.db import database_turn
from gateway.store.deferred import pipelined, write
from gateway.xmlparse import XmlLimits, hardened_parser, parse_untrusted

if TYPE_CHECKING:
    from gateway.security.verify import VerifiedSignature

MAX_SCHEMA_ERRORS_REPORTED = 3
log = logging.getLogger(__name__)


@dataclass
class Inbound:
    """One message on its way through the pipeline; each stage fills in what it establishes."""

    raw: bytes
    received_at: datetime
    client: str | None = None  # the sender's address (as the trusted proxies report it), for throttles
    tree: etree._ElementTree | None = None
    parts: EnvelopeParts | None = None
    routing: Routing | None = None
    service: Service | None = None
    sender: ParticipantEntry | None = None
    recipient: ParticipantEntry | None = None
    security: VerifiedSignature | None = None
    stored: StoredMessage | None = None
    sealed: Sealed | None = None  # the envelope sealed for storage (``SealEnvelope``)
    receipt_parts: str | None = None  # the receipt's copy of the sender's references (``ReceiptIssuer.prepare``)
    receipt_bytes: bytes | None = None  # the signed receipt, in exclusive canonical form (``ReceiptIssuer.sign``)
    answer: etree._Element | None = None  # the gateway's own answer (plumbing, verification), instead of the receipt
    acceptance: RecordedEntry | None = None  # the audit entry of the acceptance (indexed at the receipt)
    resent: Resent | None = None  # an accepted message sent again unchanged: answered with its receipt
    # The answer of a service answered with more than its receipt (a verification), given the receipt.
    answer_with_receipt: Callable[[etree._Element], etree._Element] | None = None
    # The database stages' times (``gateway.monitoring.instruments.TimedStage``), observed after the
    # batch's commit by the request's thread rather than in the writer, inside the database's lock.
    stage_times: list[tuple[Callable[[float], None], float]] | None = None
    _body_sha256: str | None = None

    @property
    def message_id(self) -> str | None:
        return self.routing.message_id if self.routing else None

    def body_sha256(self) -> str:
        """SHA-256 (hex) of the Body's exclusive canonical form: what the sender signed as the document."""
        if self._body_sha256 is None:
            assert self.parts is not None
            body = etree.tostring(self.parts.body, method="c14n", exclusive=True)
            self._body_sha256 = hashlib.sha256(body).hexdigest()
        return self._body_sha256


@dataclass(frozen=True)
class Resent:
    """The stored message that this one repeats: its signed receipt is the answer again."""

    receipt: bytes | None  # None: the gateway stopped between the message's commit and its receipt
    recipient_id: str
    received_at: datetime


class Stage(Protocol):
    def __call__(self, inbound: Inbound, session: Session) -> None: ...


@dataclass(frozen=True)
class Accepted:
    """What the sender is told about an accepted message.

    ``answer`` is what goes back in the SOAP Body: the signed receipt for a business document
    that is delivered, the gateway's own answer for the others (a plumbing service's, without a
    receipt; a verification's, holding its receipt). A receipt is bytes, spliced into the response
    as they are: as signed now, in exclusive canonical form (``canonical``: the signed response
    digests them without parsing them, ``ResponseSigner.envelope``), or as stored, for a message
    sent again. The other answers are elements.
    """

    message_id: str
    sender_id: str
    recipient_id: str
    service: Service
    received_at: datetime
    answer: etree._Element | bytes
    push_delivery_ids: tuple[int, ...] = ()
    canonical: bool = False  # ``answer`` is bytes in exclusive canonical form
    resent: bool = False  # sent again unchanged: the answer is the original receipt, nothing new stored


class ReceiptIssuer(Protocol):
    """Signs the receipt of an accepted message and keeps it with the message (``gateway.security.receipt``).

    ``prepare`` does the receipt's CPU work that needs no log position, before the transaction (it
    may set ``inbound.receipt_parts``); ``sign`` sets ``inbound.receipt_bytes``, in exclusive
    canonical form (CPU only, no database); ``keep`` writes them in ``session``; ``again`` signs a
    stored message's receipt anew when it was never kept, and keeps it.
    """

    def prepare(self, inbound: Inbound) -> None: ...

    def sign(self, inbound: Inbound) -> None: ...

    def keep(self, inbound: Inbound, session: Session) -> None: ...

    def again(self, session: Session, sender: str, message_id: str) -> bytes | None: ...


@dataclass(frozen=True)
class Stages:
    """The intake's stages: ``checks`` are CPU work and read no database (parse, schema, service,
    signature); ``stages`` are the database work, run in the group commit's transaction."""

    checks: Sequence[Stage]
    stages: Sequence[Stage]


class _NoDatabase:
    """What a CPU check gets for a session: it must not use one (its work precedes any transaction)."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"a CPU check used the database (Session.{name}): make it a database stage")


NO_DATABASE = cast(Session, _NoDatabase())


class Pipeline:
    """The checks in the request's thread, the stages in a shared transaction, then the receipt.

    The checks (parse, schema, service, signature) are CPU work and run in the request's own
    thread, holding nothing. The database stages of every message then run in the process's
    :class:`~gateway.intake.writer.BatchWriter`: many concurrent messages in one transaction,
    each in a savepoint of its own, so a refused message is rolled back alone with its own fault
    while the others commit (group commit).

    The receipt names the acceptance's place in the audit log, so it is signed once that place is
    known:

    - in the message's own batch, on SQLite: once every piece of the batch has done its work, the
      batch's audit entries get their indexes, all at once (``gateway.audit.log.sequence``), and
      each accepted message's receipt is signed and written with it, just before the commit (the
      writer's ``finish``). A message is stored with its receipt or not at all, and its request
      waits for one commit, not two (on SQLite every commit is a turn at the file). The receipt's
      lxml work, the copy of the sender's references, is done before, in the request's thread
      (``ReceiptIssuer.prepare``): in the writer, lxml's letting go of the interpreter lock would
      make the batch wait for the request threads;
    - just after the batch's commit, on PostgreSQL (``receipt_settled``): the batch's audit entries
      take their indexes in the COMMIT's round trip (``gateway.audit.log.index_at_commit``), the
      writer signs each receipt once that commit has returned (its ``settle``) and keeps them in
      its next batch; the request waits for both commits. The audit log's counter row, which every
      process's batches take, is then held on the server from the indexes' statement to the COMMIT
      and never while the gateway signs (bench/intake/README.md, fourteenth pass). If the gateway
      stops, or the database fails, in between, the message is stored without its receipt and the
      sender is not answered (or told to send again): sent again, it gets the receipt signed anew
      from the stored message (``ReceiptIssuer.again``). An answered receipt is always kept;
    - after the commit, with ``defer_indexes`` (an option on PostgreSQL: the batch takes no audit
      counter at all, and one sequencer gives many batches' entries their indexes afterwards): signed in the
      request's thread and kept with the message in the writer's next batch. If the gateway stops
      in between, the message is stored without its receipt; the sender, told nothing (or told to
      send again, when the receipt could not be kept), sends again and gets the receipt signed
      anew from the stored message (``ReceiptIssuer.again``).

    ``registry``, the stages' registry snapshot: given, a batch's replay look-up on PostgreSQL
    reads the registry's version in the same statement and brings the snapshot up to date with it
    (one round trip a batch fewer); not given, the batch's first check reads it.
    """

    def __init__(
        self,
        stages: Stages,
        sessions: sessionmaker[Session],
        receipts: ReceiptIssuer | None = None,
        defer_indexes: bool = False,
        batch_limit: int = 64,
        registry: RegistrySnapshot | None = None,
    ) -> None:
        self.checks = tuple(stages.checks)
        self.stages = tuple(stages.stages)
        self._sessions = sessions
        self.receipts = receipts
        self.registry = registry
        bind = sessions.kw.get("bind")
        at_commit = receipts is not None and not defer_indexes and isinstance(bind, Engine) and pipelined(bind)
        self.receipt_in_batch = receipts is not None and not defer_indexes and not at_commit
        self.receipt_settled = at_commit  # signed by the writer after the commit, kept in its next batch
        self.positions = PositionWaiter(sessions)
        self.writer = BatchWriter(
            sessions,
            limit=batch_limit,
            prepare=_defer_indexes if defer_indexes else index_at_commit if at_commit else None,
            look_ahead=self._look_ahead,  # the batch's replay checks in one look-up (gateway.intake.earlier)
            turn=database_turn(bind),
        )

    def _look_ahead(self, session: Session, keys: list[object]) -> None:
        """The writer's ``look_ahead``: the batch's replay look-up, which on PostgreSQL also reads
        the registry's version, with which ``registry`` (the stages') is brought up to date."""
        version = look_ahead(session, keys)
        if version is not None and self.registry is not None:
            self.registry.refresh(session, version=version)

    def process(self, raw: bytes, received_at: datetime, client: str | None = None) -> Accepted:
        """Run every stage; returns the acceptance or raises the first stage's :class:`Fault`.

        ``client`` is the sending machine's address: the database stages run in the writer's thread,
        outside the request, so what they need of it travels with the message.
        """
        inbound = Inbound(raw=raw, received_at=received_at, client=client)
        try:
            for check in self.checks:
                check(inbound, NO_DATABASE)
            finish = settle = None
            receipted = self.receipts is not None and inbound.service is not None and not inbound.service.is_plumbing
            if receipted and (self.receipt_in_batch or self.receipt_settled):
                assert self.receipts is not None
                self.receipts.prepare(inbound)
                if self.receipt_in_batch:
                    finish = lambda session: self._receipt_in_batch(inbound, session)  # noqa: E731
                else:
                    settle = lambda: self._receipt_after_batch(inbound)  # noqa: E731
            try:
                routing = inbound.routing
                self.writer.run(
                    lambda session: self._in_transaction(inbound, session),
                    finish=finish,
                    key=(routing.sender, routing.message_id) if routing is not None else None,
                    settle=settle,
                )
            finally:
                _observe_stage_times(inbound)
            if inbound.resent is not None:
                return self._answer_again(inbound, inbound.resent)
            self._issue_receipt(inbound)
        except Fault as fault:
            if fault.message_id is None:
                fault.message_id = inbound.message_id
            if inbound.routing is not None:  # as claimed by the message, verified or not
                fault.sender = inbound.routing.sender
                fault.service = inbound.routing.service_name
            raise
        stored, service = inbound.stored, inbound.service
        answer: etree._Element | bytes | None = inbound.answer
        with_receipt = service is not None and service.answered_with_receipt
        if with_receipt:
            answer = inbound.receipt_bytes
        if stored is None or service is None or answer is None:
            raise RuntimeError("the pipeline has no store, receipt or answering stage for this service")
        return Accepted(
            message_id=stored.message_id,
            sender_id=stored.sender_id,
            recipient_id=stored.recipient_id,
            service=service,
            received_at=stored.received_at,
            answer=answer,
            push_delivery_ids=stored.push_delivery_ids,
            canonical=with_receipt,
        )

    def _in_transaction(self, inbound: Inbound, session: Session) -> None:
        """The database stages of one message (in the writer's thread, in its batch's transaction)."""
        inbound.stage_times = []  # this attempt's (a batch that meets a refusal runs again)
        for stage in self.stages:
            stage(inbound, session)
            if inbound.resent is not None:
                self._record_resend(inbound, inbound.resent, session)
                return

    def _receipt_in_batch(self, inbound: Inbound, session: Session) -> None:
        """The writer's ``finish``: once the batch's work is done, sign the receipt and write it with the message."""
        if inbound.resent is not None or inbound.acceptance is None:
            return  # a resend is answered with its original receipt
        assert self.receipts is not None
        sequence(session)  # the batch's entries, at the first finish (the counter row held to the commit)
        self.receipts.sign(inbound)
        self.receipts.keep(inbound, session)

    def _receipt_after_batch(self, inbound: Inbound) -> Work | None:
        """The writer's ``settle``: once the batch has committed, and with it given the acceptance
        its leaf index, sign the receipt (in the writer's thread, the audit counter free); it is
        kept with the message in the writer's next batch."""
        if inbound.resent is not None or inbound.acceptance is None:
            return None  # a resend is answered with its original receipt
        receipts = self.receipts
        assert receipts is not None
        receipts.sign(inbound)
        return lambda session: receipts.keep(inbound, session)

    def _issue_receipt(self, inbound: Inbound) -> None:
        """After the commit: the receipt, unless it was signed in the batch (then only the answer
        that holds it); signed now once the acceptance has its log position, and kept with the message."""
        if self.receipts is None or inbound.service is None or inbound.service.is_plumbing:
            return
        if inbound.receipt_bytes is None:  # the indexes are given after the commit (``defer_indexes``)
            self._sign_after_commit(inbound, self.receipts)
        assert inbound.receipt_bytes is not None
        if inbound.answer_with_receipt is not None:
            receipt = etree.fromstring(inbound.receipt_bytes, parser=hardened_parser())  # the gateway's own
            inbound.answer = inbound.answer_with_receipt(receipt)

    def _sign_after_commit(self, inbound: Inbound, receipts: ReceiptIssuer) -> None:
        assert inbound.acceptance is not None
        try:
            self.positions.wait([inbound.acceptance], inbound.received_at)
        except TimeoutError:
            log.error("message %s is stored, but its audit entry got no leaf index in time", inbound.message_id)
            raise DatabaseUnavailable() from None  # the sender sends again and gets the receipt then
        receipts.sign(inbound)  # in this thread: the writer holds its transaction for writes only
        try:
            self.writer.run(lambda session: receipts.keep(inbound, session), savepoint=False)  # one UPDATE
        except DBAPIError as exc:
            # An answered receipt is always kept: the sender is told to send again, and then gets
            # the receipt signed anew from the stored message (as on the default paths).
            log.warning("the receipt of %s was not kept: %s", inbound.message_id, str(exc).splitlines()[0])
            raise DatabaseUnavailable() from None

    @staticmethod
    def _record_resend(inbound: Inbound, resent: Resent, session: Session) -> None:
        assert inbound.routing is not None and inbound.service is not None and inbound.security is not None
        routing = inbound.routing
        record(
            session,
            AuditEvent(
                kind="message.resent",
                at=inbound.received_at,
                message_id=routing.message_id,
                facts={
                    "message_id": routing.message_id,
                    "sender": routing.sender,
                    "service": inbound.service.name,
                    "signature_sha256": inbound.security.signature_sha256,
                    "first_received_at": resent.received_at.isoformat(),
                },
            ),
        )

    def _answer_again(self, inbound: Inbound, resent: Resent) -> Accepted:
        """The original receipt for a message sent again unchanged (signed anew if it was never kept)."""
        assert inbound.routing is not None and inbound.service is not None
        routing = inbound.routing
        receipt = resent.receipt
        if receipt is None and self.receipts is not None:
            sequence_pending(self._sessions, inbound.received_at)  # its acceptance entry, if still waiting
            with self._sessions() as session, session.begin():
                receipt = self.receipts.again(session, routing.sender, routing.message_id)
        if receipt is None:
            raise DatabaseUnavailable()  # cannot be signed anew now (its envelope is gone): a rare case
        return Accepted(
            message_id=routing.message_id,
            sender_id=routing.sender,
            recipient_id=resent.recipient_id,
            service=inbound.service,
            received_at=resent.received_at,
            answer=receipt,  # as stored: a receipt signed as a tree by an earlier version is not canonical
            push_delivery_ids=(),
            resent=True,
        )


def _observe_stage_times(inbound: Inbound) -> None:
    """Observe the database stages' times that the writer noted (``Inbound.stage_times``)."""
    noted, inbound.stage_times = inbound.stage_times, None
    for observe, seconds in noted or ():
        observe(seconds)


# --- the stages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parse:
    """Parse with the hardened parser (the size limit was checked before the bytes were read)."""

    limits: XmlLimits

    def __call__(self, inbound: Inbound, session: Session) -> None:
        inbound.tree = parse_untrusted(inbound.raw, self.limits)


def split(inbound: Inbound, session: Session) -> None:
    """Find Header, routing header and Body: a SOAP 1.1 envelope with one document in the Body."""
    assert inbound.tree is not None
    inbound.parts = split_envelope(inbound.tree.getroot())


@dataclass(frozen=True)
class ValidateSchema:
    """Validate envelope, routing header and Body document against the published XSDs, in one pass."""

    catalog: ServiceCatalog

    def __call__(self, inbound: Inbound, session: Session) -> None:
        assert inbound.tree is not None and inbound.parts is not None
        schema = self.catalog.schema  # this thread's own validator and error log
        if schema.validate(inbound.tree):
            return
        errors = list(cast(Iterable[etree._LogEntry], schema.error_log))[:MAX_SCHEMA_ERRORS_REPORTED]
        described = "; ".join(f"line {e.line}: {e.message}" for e in errors)
        raise SchemaViolation(described)


@dataclass(frozen=True)
class IdentifyService:
    """Read the routing header and match the service it names to the document in the Body."""

    catalog: ServiceCatalog

    def __call__(self, inbound: Inbound, session: Session) -> None:
        assert inbound.parts is not None
        routing = read_routing(inbound.parts.routing)
        inbound.routing = routing
        named = self.catalog.get(routing.service_name, routing.service_version)
        if named is None:
            raise UnknownService(
                f"no service {routing.service_name} version {routing.service_version}; "
                "the WSDL at /soap?wsdl lists the services"
            )
        carried = inbound.parts.document.tag
        if carried != named.request_element:
            raise ServiceMismatch(
                f"the routing header names {named.name} ({named.request_element}) but the Body carries {carried}"
            )
        inbound.service = named


@dataclass(frozen=True)
class CheckSender:
    """The sender is a registered, enabled participant (in the registry snapshot of this transaction).

    The first message of a batch reads the registry's version here, bringing the process's
    snapshot up to date in the batch's transaction (``RegistrySnapshot.view``), unless the batch's
    look-up read it already (``Pipeline``'s ``registry``, on PostgreSQL); the batch's other
    messages, and the later stages, reuse that view.
    """

    registry: RegistrySnapshot

    def __call__(self, inbound: Inbound, session: Session) -> None:
        assert inbound.routing is not None
        sender = self.registry.view(session).participant(inbound.routing.sender)
        if sender is None:
            raise UnknownSender(f"sender {inbound.routing.sender} is not a registered participant")
        if not sender.enabled:
            raise SenderDisabled(f"sender {sender.id} ({sender.name}) is disabled")
        inbound.sender = sender


@dataclass(frozen=True)
class Resolve:
    """Resolve the recipient through the directory (the registry snapshot of this transaction); a
    plumbing request's is the sender's own mailbox."""

    registry: RegistrySnapshot

    def __call__(self, inbound: Inbound, session: Session) -> None:
        assert inbound.routing is not None and inbound.service is not None and inbound.sender is not None
        if inbound.service.is_plumbing:
            named = inbound.routing.recipient
            if named.participant != inbound.sender.id:
                raise PlumbingRecipient(
                    f"{inbound.service.name} is a request to the gateway about your own mailbox and messages: "
                    f"address it to your own participant id {inbound.sender.id}, not {named.describe()}"
                )
            inbound.recipient = inbound.sender
            return
        inbound.recipient = resolve_recipient(inbound.routing.recipient, self.registry.view(session))


@dataclass(frozen=True)
class StoredMessage:
    """What the later stages and the receipt need of a stored message."""

    id: int  # its primary key
    message_id: str
    sender_id: str
    recipient_id: str
    received_at: datetime
    push_delivery_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class SealEnvelope:
    """The CPU half of storing: seal the envelope (``gateway.messages.payloads``) and digest the Body,
    in the request's thread, so that the transaction holds only the INSERTs."""

    payloads: PayloadCipher

    def __call__(self, inbound: Inbound, session: Session) -> None:
        assert inbound.routing is not None
        inbound.body_sha256()
        inbound.sealed = self.payloads.seal(inbound.raw, ENVELOPE, inbound.routing.sender, inbound.routing.message_id)


# Core statements built once: the message and its delivery are never read back through the ORM in
# the transaction that writes them, and the unit of work cost several times the INSERTs themselves.
_MESSAGES = cast(Table, Message.__table__)
_DELIVERIES = cast(Table, Delivery.__table__)
_INSERT_MESSAGE = insert(_MESSAGES).returning(_MESSAGES.c.id)
_INSERT_DELIVERY = insert(_DELIVERIES).returning(_DELIVERIES.c.id)
_INSERT_MAILBOX_DELIVERY = insert(_DELIVERIES)  # with the batch's others at its commit: nobody needs its id


def store(inbound: Inbound, session: Session) -> None:
    """Store the message, its envelope sealed, and its delivery record in the batch's transaction.

    A plumbing request or a verification request is stored too (evidence, replay detection) but
    has nothing to deliver: the gateway answers it. A delivery to a pull mailbox is written at the
    batch's commit, with the batch's others (``gateway.store.deferred``); a push delivery at once,
    since its id goes to the broker.
    """
    assert inbound.routing is not None and inbound.service is not None and inbound.sealed is not None
    assert inbound.sender is not None and inbound.recipient is not None and inbound.security is not None
    routing, recipient = inbound.routing, inbound.recipient
    values = {
        "message_id": routing.message_id,
        "sender_id": inbound.sender.id,
        "recipient_id": recipient.id,
        "service": inbound.service.name,
        "service_version": inbound.service.version,
        "correlation_id": routing.correlation_id,
        "created_at": routing.created_at,
        "received_at": inbound.received_at,
        "size": len(inbound.raw),
        "body_sha256": inbound.body_sha256(),
        "certificate_sha256": inbound.security.certificate_sha256,
        "signature_sha256": inbound.security.signature_sha256,
        "envelope": inbound.sealed.data,
        "envelope_key_id": inbound.sealed.key_id,
    }
    try:
        pk = session.execute(_INSERT_MESSAGE, values).scalar_one()
    except IntegrityError:
        # Another request stored the same message id between the replay check and this insert.
        raise DuplicateMessage(f"message {routing.message_id} from {routing.sender} was already accepted") from None
    push: tuple[int, ...] = ()
    if inbound.service.is_delivered:
        delivery = Delivery.first_values(recipient.id, recipient.delivery_mode, inbound.received_at)
        delivery["message_pk"] = pk
        if recipient.delivery_mode == DeliveryMode.PUSH:  # its id goes to the broker after the commit
            push = (session.execute(_INSERT_DELIVERY, delivery).scalar_one(),)
        else:
            # A mailbox's delivery waits for its recipient's fetch; nothing in the batch reads it back
            # (a fetch in the same batch finds it at the next) and it can break no key: it is written
            # with the batch's other mailbox deliveries, in one statement at the commit.
            write(session, _INSERT_MAILBOX_DELIVERY, delivery)
    inbound.stored = StoredMessage(
        pk, routing.message_id, inbound.sender.id, recipient.id, inbound.received_at, push_delivery_ids=push
    )
    # Store and audit in one transaction: the acceptance's audit entry (its place in the log is
    # given at the commit, or by the sequencer after it; the receipt names it).
    inbound.acceptance = record(
        session,
        acceptance_event(
            message_id=routing.message_id,
            sender=inbound.sender.id,
            recipient=recipient.id,
            service=inbound.service.name,
            received_at=inbound.received_at,
            body_sha256=inbound.body_sha256(),
            signature_sha256=inbound.security.signature_sha256,
            certificate_sha256=inbound.security.certificate_sha256,
        ),
    )


def acceptance_event(
    *,
    message_id: str,
    sender: str,
    recipient: str,
    service: str,
    received_at: datetime,
    body_sha256: str,
    signature_sha256: str,
    certificate_sha256: str,
) -> AuditEvent:
    """The ``message.accepted`` audit entry of a stored message: what its receipt's log entry says.

    The one definition of those facts: the intake's ``store`` stage records it, and so does
    ``bench/delivery/stored.py``, which stores messages without the intake for the memory run.
    """
    return AuditEvent(
        kind="message.accepted",
        at=received_at,
        message_id=message_id,
        facts={
            "message_id": message_id,
            "sender": sender,
            "recipient": recipient,
            "service": service,
            "body_sha256": body_sha256,
            "signature_sha256": signature_sha256,
            "certificate_sha256": certificate_sha256,
        },
    )


def default_stages(
    catalog: ServiceCatalog,
    limits: XmlLimits,
    verify: Stage,
    registration: Stage,
    codes: Stage,
    check_domain: Stage,
    apply_domain: Stage,
    plumbing: Stage,
    verification: Stage,
    payloads: PayloadCipher,
    registry: RegistrySnapshot,
) -> Stages:
    """The intake stages in order: the CPU checks, then the database stages.

    ``verify``, ``registration`` and ``receipt`` are message security's (``gateway.security``:
    the signature's CPU work, then the certificate's registration and replay in the database); ``codes`` (a CPU
    check: the document's codes), ``check_domain`` and ``apply_domain`` the domain's (``gateway.domain``:
    access rights, service rules, their effects);
    ``plumbing`` answers the plumbing services (``gateway.delivery.plumbing``) and
    ``verification`` the graduate verification requests (``gateway.grants.answer``); ``payloads``
    seals the stored envelope (``gateway.messages.payloads``); ``registry`` is the process's
    registry snapshot (``gateway.registry.snapshot``) that the sender's and the recipient's checks read.
    """
    return Stages(
        checks=[
            Parse(limits),
            split,
            ValidateSchema(catalog),
            IdentifyService(catalog),
            verify,
            codes,  # after the signature: only an authentic document is read
            SealEnvelope(payloads),
        ],
        stages=[
            CheckSender(registry),  # the batch's first: the registry snapshot brought up to date
            registration,
            Resolve(registry),
            check_domain,
            store,
            apply_domain,
            plumbing,
            verification,
        ],
    )
