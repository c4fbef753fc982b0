"""The one error hierarchy of the gateway.

Every refusal of a message is a :class:`Fault` subclass with a stable machine-readable ``code``;
``gateway.intake.faults`` turns them into SOAP 1.1 Faults and is the only place that does.
Codes never change meaning once published; ``docs/faults.md`` lists them all and a test keeps that
list and this module in step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from gateway.privacy import redact

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class GatewayError(Exception):
    """Root of everything the gateway raises on purpose."""


class ConfigurationError(GatewayError):
    """A setting or an environment variable is missing or malformed."""


class ValidationError(GatewayError):
    """Input that breaks a rule. ``field`` names the input, the message names the rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.rule = message


class NotFound(GatewayError):
    """A thing looked up by id does not exist."""


class Refusal(GatewayError):
    """A person's request refused (the graduate portal): ``code`` for programs, ``message`` for the person.

    Messages are written to be shown as they are; they never say more than the person may know
    (an activation that matches no filed registration does not say which detail was wrong).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ActivationRefused(Refusal):
    """A graduate account could not be activated (``gateway.graduates.services.activate``)."""


class SignInRefused(Refusal):
    """Identity number and password do not belong to an activated account."""


class GrantRefused(Refusal):
    """A grant cannot be revoked, paused or resumed: not the graduate's own, or not in a state for it."""


class OfferResponseRefused(Refusal):
    """An agreement offer cannot be answered: not the graduate's, expired, or already answered."""


class GrantInvalid(ValidationError):
    """A new grant breaks a rule; ``field`` names the input (verifier, facts, purpose, ...)."""


class PayloadUnavailable(GatewayError):
    """A stored payload (a message's envelope) cannot be given back as the original bytes.

    Never a fault to a sender: it is the gateway's own state. The subclasses say why.
    """


class PayloadKeyMissing(PayloadUnavailable):
    """The payload is encrypted under a key id that is not in the payload key ring."""


class PayloadPurged(PayloadUnavailable):
    """The payload was erased under the retention setting; the message's metadata and digests remain."""


class PayloadCorrupt(PayloadUnavailable):
    """The ciphertext does not authenticate: changed, truncated, or moved from another message's row."""


class Fault(GatewayError):
    """A refusal reported to the sender as a SOAP Fault.

    ``faultcode`` is SOAP 1.1's ``Client`` (the sender must change something) or ``Server``;
    ``http_status`` is 500 as SOAP 1.1 over HTTP requires, except where HTTP has a better word.
    """

    code: ClassVar[str] = "INTERNAL_ERROR"
    faultcode: ClassVar[str] = "Client"
    http_status: ClassVar[int] = 500
    summary: ClassVar[str] = "the gateway could not process the message"

    def __init__(self, message: str | None = None, *, message_id: str | None = None) -> None:
        # Fault texts are logged and returned; identity numbers quoted from the input never are.
        text = redact(message or self.summary)
        super().__init__(text)
        self.message = text
        self.message_id = message_id
        self.sender: str | None = None  # set by the pipeline once the routing header was read
        self.service: str | None = None
        # Evidence of the refusal that must outlive the message's rolled-back transaction (a refused
        # use of a graduate's grant): written by the intake in the refusal's own transaction.
        self.on_refusal: Callable[[Session], None] | None = None


# --- transport and XML ------------------------------------------------------------------------


class PayloadTooLarge(Fault):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413
    summary = "the message is larger than the gateway accepts"


class UnsupportedMediaType(Fault):
    code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415
    summary = "SOAP 1.1 messages are sent as text/xml"


class MalformedXml(Fault):
    code = "XML_MALFORMED"
    summary = "the message is not well-formed XML"


class DtdForbidden(Fault):
    code = "XML_DTD_FORBIDDEN"
    summary = "document type declarations are not allowed"


class EntityForbidden(Fault):
    code = "XML_ENTITY_FORBIDDEN"
    summary = "entity declarations and references are not allowed"


class XmlTooDeep(Fault):
    code = "XML_TOO_DEEP"
    summary = "the document nests elements deeper than the gateway accepts"


class ProcessingInstructionForbidden(Fault):
    code = "XML_PI_FORBIDDEN"
    summary = "processing instructions are not allowed in a SOAP message"


class XmlTooManyElements(Fault):
    code = "XML_TOO_MANY_ELEMENTS"
    summary = "the document has more elements than the gateway accepts"


class XmlTooManyAttributes(Fault):
    code = "XML_TOO_MANY_ATTRIBUTES"
    summary = "an element has more attributes than the gateway accepts"


class XmlAttributeTooLong(Fault):
    code = "XML_ATTRIBUTE_TOO_LONG"
    summary = "an attribute value is longer than the gateway accepts"


class XmlTextTooLong(Fault):
    code = "XML_TEXT_TOO_LONG"
    summary = "a text node is longer than the gateway accepts"


class XmlTooManyNamespaces(Fault):
    code = "XML_TOO_MANY_NAMESPACES"
    summary = "more namespace declarations are in scope at one element than the gateway accepts"


class NotSoapEnvelope(Fault):
    code = "SOAP_ENVELOPE_INVALID"
    summary = "the document is not a SOAP 1.1 envelope with one Header and one Body"


class SchemaViolation(Fault):
    code = "SCHEMA_VIOLATION"
    summary = "the message does not conform to the published schemas"


class RoutingHeaderMissing(Fault):
    code = "ROUTING_HEADER_MISSING"
    summary = "the SOAP Header carries no gateway routing header"


# --- services and participants ----------------------------------------------------------------


class UnknownService(Fault):
    code = "UNKNOWN_SERVICE"
    summary = "the gateway offers no such service"


class ServiceMismatch(Fault):
    code = "SERVICE_MISMATCH"
    summary = "the routing header names a different service than the Body carries"


class UnknownSender(Fault):
    code = "UNKNOWN_SENDER"
    summary = "the sender is not a registered participant"


class SenderDisabled(Fault):
    code = "SENDER_DISABLED"
    summary = "the sender is disabled"


class UnknownRecipient(Fault):
    code = "UNKNOWN_RECIPIENT"
    summary = "the recipient resolves to no registered participant"


class RecipientDisabled(Fault):
    code = "RECIPIENT_DISABLED"
    summary = "the recipient is disabled"


class PlumbingRecipient(Fault):
    code = "PLUMBING_RECIPIENT"
    summary = "a mailbox, status or delivery receipt request must be addressed to the sender's own participant id"


class DuplicateMessage(Fault):
    code = "DUPLICATE_MESSAGE"
    summary = "a message with this id was already accepted from this sender"


# --- message security -------------------------------------------------------------------------


class SignatureMissing(Fault):
    code = "SIGNATURE_MISSING"
    summary = "the message carries no WS-Security signature"


class SignatureInvalid(Fault):
    code = "SIGNATURE_INVALID"
    summary = "the WS-Security signature does not verify or does not cover what it must"


class AlgorithmNotAllowed(Fault):
    code = "ALGORITHM_NOT_ALLOWED"
    summary = "the signature uses an algorithm or key the gateway does not accept"


class CertificateUntrusted(Fault):
    code = "CERT_UNTRUSTED"
    summary = "the signing certificate does not chain to a trust anchor or may not sign"


class CertificateExpired(Fault):
    code = "CERT_EXPIRED"
    summary = "the signing certificate is expired or not yet valid"


class CertificateRevoked(Fault):
    code = "CERT_REVOKED"
    summary = "the signing certificate has been revoked"


class CertificateNotRegistered(Fault):
    code = "CERT_NOT_REGISTERED"
    summary = "the signing certificate is not registered to the sender"


class RevocationUnavailable(Fault):
    code = "REVOCATION_UNAVAILABLE"
    faultcode = "Server"
    http_status = 503
    summary = "the gateway cannot check the signing certificate's revocation now; send the message again later"


class TimestampStale(Fault):
    code = "TIMESTAMP_STALE"
    summary = "the wsu:Timestamp is missing, too old, expired or in the future"


class Replay(Fault):
    code = "REPLAY"
    summary = "this signed message was already received"


# --- the domain ---------------------------------------------------------------------------------


class CodeInvalid(Fault):
    code = "CODE_INVALID"
    summary = "a code in the document fails its check character or is not in its code list"


class AccessDenied(Fault):
    code = "ACCESS_DENIED"
    summary = "the access rights do not let this sender send this service to this recipient"


class RegistrationUnknown(Fault):
    code = "REGISTRATION_UNKNOWN"
    summary = "the message refers to a destination registration the gateway has not seen"


class RegistrationNotFiled(Fault):
    code = "REGISTRATION_NOT_FILED"
    summary = "the graduate has no filed destination registration"


class EmployerUnitNatureMismatch(Fault):
    code = "EMPLOYER_UNIT_NATURE_MISMATCH"
    summary = "the registration declares another unit nature for the employer than the registry records"


class TargetedTrainingNotReleased(Fault):
    code = "TARGETED_TRAINING_NOT_RELEASED"
    summary = "a graduate trained under a targeted agreement is registered elsewhere without its release"


class ArchiveRuleViolation(Fault):
    code = "ARCHIVE_RULE_VIOLATION"
    summary = "the archive may not go to this receiving unit or by this dispatch method"


class ArchiveIncomplete(Fault):
    code = "ARCHIVE_INCOMPLETE"
    summary = "the manifest lacks a document every graduate's archive must hold"


class ArchiveTransferUnknown(Fault):
    code = "ARCHIVE_TRANSFER_UNKNOWN"
    summary = "the message refers to an archive transfer the gateway has not seen"


class ArchiveTransferDuplicate(Fault):
    code = "ARCHIVE_TRANSFER_DUPLICATE"
    summary = "the archive transfer was already declared, answered or receipted, or another one is open"


class AgreementUnknown(Fault):
    code = "AGREEMENT_UNKNOWN"
    summary = "the message refers to an employment agreement the gateway has not seen"


class AgreementOutOfOrder(Fault):
    code = "AGREEMENT_OUT_OF_ORDER"
    summary = "the employment agreement is not in a state where this step is allowed"


class AgreementOfferExpired(Fault):
    code = "AGREEMENT_OFFER_EXPIRED"
    summary = "the offer's validity period has passed (or has not begun)"


# --- graduate authorisations (GraduateVerificationRequest) --------------------------------------


class AuthorisationMissing(Fault):
    code = "AUTHORISATION_MISSING"
    summary = "the verification request carries no authorisation (token or short code) from the graduate"


class AuthorisationInvalid(Fault):
    code = "AUTHORISATION_INVALID"
    summary = "the authorisation is malformed, its signature does not verify, or it names no grant"


class AuthorisationThrottled(Fault):
    code = "AUTHORISATION_THROTTLED"
    http_status = 429
    summary = "too many short codes that name no authorisation: short codes are refused for a while"


class AuthorisationWrongVerifier(Fault):
    code = "AUTHORISATION_WRONG_VERIFIER"
    summary = "the graduate granted this authorisation to another verifier"


class AuthorisationSubjectMismatch(Fault):
    code = "AUTHORISATION_SUBJECT_MISMATCH"
    summary = "the request's subject is not the graduate who granted the authorisation"


class AuthorisationRevoked(Fault):
    code = "AUTHORISATION_REVOKED"
    summary = "the graduate has revoked (or paused) this authorisation"


class AuthorisationExpired(Fault):
    code = "AUTHORISATION_EXPIRED"
    summary = "the authorisation's validity has ended"


class AuthorisationExhausted(Fault):
    code = "AUTHORISATION_EXHAUSTED"
    summary = "the authorisation's uses are used up"


class AuthorisationInsufficientScope(Fault):
    code = "AUTHORISATION_INSUFFICIENT_SCOPE"
    summary = "the request asks for facts, or gives a purpose, beyond what the graduate granted"


# --- reliable delivery ---------------------------------------------------------------------------


class MessageUnknown(Fault):
    code = "MESSAGE_UNKNOWN"
    summary = "no message with this id from you"


class NotYetDelivered(Fault):
    code = "NOT_YET_DELIVERED"
    summary = "the message has not been delivered to every recipient yet"


class DatabaseUnavailable(Fault):
    code = "DATABASE_UNAVAILABLE"
    faultcode = "Server"
    http_status = 503
    retry_after_seconds: ClassVar[int] = 5
    summary = (
        "the gateway's database cannot be reached or written just now; the message was not accepted: "
        "send it again, unchanged, in a few seconds"
    )


class InternalError(Fault):
    code = "INTERNAL_ERROR"
    faultcode = "Server"
    summary = "the gateway failed while processing the message; it was not accepted"


def all_fault_classes() -> list[type[Fault]]:
    """Every concrete fault, for the documentation test and ``docs/faults.md``."""
    found: list[type[Fault]] = []
    pending: list[type[Fault]] = [Fault]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            pending.append(sub)
            found.append(sub)
    return sorted(found, key=lambda c: c.code)
