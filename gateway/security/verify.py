"""The verification stage: only messages provably from their sender go on.

For every message: the WS-Security structure (``wsse.read_security_header``), the algorithms and
key, a fresh Timestamp, a certificate that chains to a trust anchor, is valid, not revoked and
registered to the sender, then the signature itself (signxml, with the certificate we checked,
the signature's location fixed and the number of references fixed), then replay.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import hashes
from lxml import etree
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.clock import utc
from gateway.errors import CertificateNotRegistered, DuplicateMessage, Replay, SignatureInvalid, TimestampStale
from gateway.intake.catalog import SOAP_ENV_NS
from gateway.intake.pipeline import Inbound
from gateway.messages.models import Message
from gateway.registry.models import ParticipantCertificate
from gateway.security.default_prefix import names_default_prefix, verify_default_prefix_signature
from gateway.security.dsig_schema import validate_signature_element
from gateway.security.policy import ALLOWED_DIGESTS, ALLOWED_SIGNATURE_METHODS, EXCLUSIVE_C14N, check_key
from gateway.security.trust import TrustStore
from gateway.security.wsse import NS, WSSE_NS, SecurityHeader, SignedReference, read_security_header

SIGNATURE_LOCATION = f"./{{{SOAP_ENV_NS}}}Header/{{{WSSE_NS}}}Security/"

# Built once and run on the session's connection (Core: no ORM entities to load, nothing to compile twice).
_certificates = ParticipantCertificate.__table__.c
_REGISTERED = select(_certificates.id).where(
    _certificates.fingerprint_sha256 == bindparam("fingerprint"), _certificates.participant_id == bindparam("sender")
)
_messages = Message.__table__.c
_EARLIER = select(_messages.signature_sha256, _messages.received_at).where(
    _messages.sender_id == bindparam("sender"), _messages.message_id == bindparam("message_id")
)


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
        config = SignatureConfiguration(
            location=SIGNATURE_LOCATION,
            expect_references=header.reference_count,
            signature_methods=ALLOWED_SIGNATURE_METHODS,
            digest_algorithms=ALLOWED_DIGESTS,
            verification_time=now,
            default_reference_c14n_method=EXCLUSIVE_C14N,
        )
        validate_signature_element(header.signature)
        try:
            if names_default_prefix(header.signature):  # signxml (through lxml) drops #default
                verify_default_prefix_signature(header.signature, certificate)
            else:
                XMLVerifier().verify(
                    root, x509_cert=certificate, id_attribute="Id", expect_config=config, validate_schema=False
                )
        except (SignXMLException, etree.LxmlError) as exc:
            raise SignatureInvalid(f"the signature does not verify: {exc}") from None
        inbound.security = VerifiedSignature(
            certificate_sha256=fingerprint,
            signature_sha256=hashlib.sha256(header.signature_value).hexdigest(),
            references=header.references,
            timestamp_created=created,
            certificate_subject=certificate.subject.rfc4514_string(),
        )


def check_registration(inbound: Inbound, session: Session) -> None:
    """The verified certificate is registered to the sender, and the message is no replay.

    The database half of verification, run after ``VerifySignature`` (which needs no database) so
    that the transaction does not begin before the signature's CPU work is done.
    """
    assert inbound.routing is not None and inbound.security is not None
    security = inbound.security
    connection = session.connection()
    registered = connection.execute(
        _REGISTERED, {"fingerprint": security.certificate_sha256, "sender": inbound.routing.sender}
    ).scalar()
    if registered is None:
        raise CertificateNotRegistered(
            f"certificate {security.certificate_sha256[:16]}… ({security.certificate_subject}) is not registered "
            f"to sender {inbound.routing.sender}"
        )
    _check_replay(session, inbound.routing.sender, inbound.routing.message_id, security.signature_sha256)


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


def _check_replay(session: Session, sender: str, message_id: str, signature_sha256: str) -> None:
    earlier = session.connection().execute(_EARLIER, {"sender": sender, "message_id": message_id}).first()
    if earlier is None:
        return
    when = earlier.received_at.isoformat()
    if earlier.signature_sha256 == signature_sha256:
        raise Replay(f"message {message_id} with this very signature was already accepted at {when}")
    raise DuplicateMessage(
        f"message {message_id} from {sender} was already accepted at {when}; its status can be queried, "
        "a message id is used once"
    )
