"""The verification stage: only messages provably from their sender go on.

For every message: the WS-Security structure (``wsse.read_security_header``: the one Signature in
its place, each reference resolved to the one element with its Id, Body, Timestamp and routing
header covered), the algorithms and key (``policy``), a fresh Timestamp, a certificate that chains
to a trust anchor, is valid and not revoked (``trust``), the ds:Signature against the XMLDSig schema
(``dsig_schema``), then the signature itself: the digests of exactly the elements ``wsse`` resolved
and the SignatureValue, with the certificate we checked (``dsig_verify``; python-xmlsec for a
PrefixList naming ``#default``, ``default_prefix``). All of that is CPU work before any transaction;
``CheckRegistration`` then checks the certificate's registration to the sender (in the process's
registry snapshot, ``gateway.registry.snapshot``: the transaction's view, no query), and replay
(in the database).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.clock import utc
from gateway.errors import (
    CertificateNotRegistered,
    DuplicateMessage,
    Replay,
    SignatureInvalid,
    TimestampStale,
)
from gateway.intake.catalog import SOAP_ENV_NS
from gateway.intake.earlier import stored_message
from gateway.intake.envelope import stored_envelope
from gateway.intake.pipeline import Inbound, Resent
from gateway.messages.models import Message
from gateway.messages.payloads import PayloadCipher
from gateway.registry.snapshot import RegistrySnapshot
from gateway.security.default_prefix import names_default_prefix, verify_default_prefix_signature
from gateway.security.dsig_schema import validate_signature_element
from gateway.security.dsig_verify import verify_signature
from gateway.security.policy import check_key
from gateway.security.trust import TrustStore
from gateway.security.wsse import NS, WSSE_NS, SecurityHeader, SignedReference, read_security_header

SIGNATURE_LOCATION = f"./{{{SOAP_ENV_NS}}}Header/{{{WSSE_NS}}}Security/"


@dataclass(frozen=True)
class VerifiedSignature:
    """What the verification stage established, for the store and the receipt."""

    certificate_sha256: str
    signature_sha256: str
    references: tuple[SignedReference, ...]
    timestamp_created: datetime
    certificate_subject: str = ""


@dataclass(frozen=True)
class VerifySignature:
    """Structure, algorithms, timestamp, certificate chain and the signature: CPU work, no database."""

    trust: TrustStore
    max_age: timedelta = timedelta(minutes=5)
    skew: timedelta = timedelta(seconds=60)

    def __call__(self, inbound: Inbound, session: Session) -> None:
        assert inbound.tree is not None and inbound.parts is not None and inbound.routing is not None
        root = inbound.tree.getroot()
        header = read_security_header(root, inbound.parts)
        now = inbound.received_at
        created = check_timestamp(header, now, self.max_age, self.skew)
        certificate = header.certificate
        check_key(certificate.public_key(), header.signature_method)
        self.trust.check(certificate, now)
        fingerprint = certificate.fingerprint(hashes.SHA256()).hex()
        validate_signature_element(header.signature)
        try:
            if names_default_prefix(header.signature):  # lxml cannot pass #default on to libxml2's C14N
                verify_default_prefix_signature(header.signature, certificate)
            else:
                verify_signature(header, certificate)
        except etree.LxmlError as exc:  # C14N refuses, e.g., a relative namespace URI
            raise SignatureInvalid(f"the signature does not verify: {exc}") from None
        inbound.security = VerifiedSignature(
            certificate_sha256=fingerprint,
            signature_sha256=hashlib.sha256(header.signature_value).hexdigest(),
            references=header.references,
            timestamp_created=created,
            certificate_subject=certificate.subject.rfc4514_string(),
        )


@dataclass(frozen=True)
class CheckRegistration:
    """The verified certificate is registered to the sender, and the message is no replay.

    The transaction's half of verification, run after ``VerifySignature`` (which needs no database) so
    that the transaction does not begin before the signature's CPU work is done. ``registry`` says
    whose the certificate is (the transaction's view of the registry); ``payloads`` opens an earlier
    message's stored envelope when a resend must be told from a new message.
    """

    payloads: PayloadCipher
    registry: RegistrySnapshot

    def __call__(self, inbound: Inbound, session: Session) -> None:
        assert inbound.routing is not None and inbound.security is not None
        security = inbound.security
        holder = self.registry.view(session).certificate_holder(security.certificate_sha256)
        if holder != inbound.routing.sender:
            raise CertificateNotRegistered(
                f"certificate {security.certificate_sha256[:16]}… ({security.certificate_subject}) is not "
                f"registered to sender {inbound.routing.sender}"
            )
        # looked up with the batch's other messages at its start (gateway.intake.earlier), or now
        found = stored_message(session, inbound.routing.sender, inbound.routing.message_id)
        if found is not None:
            self._earlier_copy(inbound, found, session)

    def _earlier_copy(self, inbound: Inbound, earlier: Any, session: Session) -> None:
        """A message id this sender used before: the same document sent again, a replay, or a new message.

        A business document sent again unchanged (same service, recipient and document; re-signed
        with a new Timestamp or not) by a sender who never saw the answer (a cut connection, a
        crash) is answered with the original signed receipt, as AS4's duplicate elimination does:
        nothing is stored or delivered twice (``Inbound.resent``). Anything else reusing the id is
        refused: the very same signed request of another kind is a ``REPLAY``, a different message
        a ``DUPLICATE_MESSAGE``.
        """
        assert inbound.routing is not None and inbound.service is not None and inbound.security is not None
        routing = inbound.routing
        when = earlier.received_at.isoformat()
        if (
            inbound.service.answered_with_receipt
            and earlier.service == inbound.service.name
            and (routing.recipient.participant is None or routing.recipient.participant == earlier.recipient_id)
            and (earlier.body_sha256 == inbound.body_sha256() or self._same_document(inbound, session))
        ):
            inbound.resent = Resent(earlier.receipt, earlier.recipient_id, earlier.received_at)
            return
        if earlier.signature_sha256 == inbound.security.signature_sha256:
            raise Replay(f"message {routing.message_id} with this very signature was already accepted at {when}")
        raise DuplicateMessage(
            f"message {routing.message_id} from {routing.sender} was already accepted at {when} with another "
            "content; its status can be queried, a message id is used once"
        )

    def _same_document(self, inbound: Inbound, session: Session) -> bool:
        """The stored message carries the same document (its Body may differ in its signing Id only)."""
        assert inbound.routing is not None and inbound.parts is not None
        stored = session.scalars(
            select(Message).where(
                Message.sender_id == inbound.routing.sender, Message.message_id == inbound.routing.message_id
            )
        ).one()
        earlier = stored_envelope(self.payloads, stored)
        if earlier is None:
            return False  # purged or unreadable: cannot be shown to be the same
        return _canonical(earlier[1].document) == _canonical(inbound.parts.document)


def _canonical(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


def check_timestamp(header: SecurityHeader, now: datetime, max_age: timedelta, skew: timedelta) -> datetime:
    """The Timestamp's Created time, if it is fresh; raises :class:`TimestampStale` otherwise."""
    created_text = header.timestamp.findtext("wsu:Created", namespaces=NS)
    if not created_text:
        raise TimestampStale("the wsu:Timestamp has no wsu:Created")
    created = _instant(created_text, "Created")
    if created > now + skew:
        raise TimestampStale(f"wsu:Created {created_text} is in the future (clock skew allowed: {skew})")
    if created < now - max_age - skew:
        raise TimestampStale(f"wsu:Created {created_text} is older than {max_age} (with {skew} skew allowed)")
    expires_text = header.timestamp.findtext("wsu:Expires", namespaces=NS)
    if expires_text and _instant(expires_text, "Expires") < now - skew:
        raise TimestampStale(f"the wsu:Timestamp expired at {expires_text}")
    return created


def _instant(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TimestampStale(f"wsu:{name} {text!r} is not a date and time") from None
    if value.tzinfo is None:
        raise TimestampStale(f"wsu:{name} {text!r} has no time zone")
    return utc(value)
