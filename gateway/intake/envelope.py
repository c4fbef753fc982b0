"""The SOAP 1.1 envelope and the gateway's routing header, read from a parsed document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from lxml import etree

from gateway.clock import utc
from gateway.errors import NotSoapEnvelope, PayloadUnavailable, RoutingHeaderMissing, SchemaViolation
from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS
from gateway.xmlparse import parse_untrusted

if TYPE_CHECKING:
    from gateway.messages.models import Message
    from gateway.messages.payloads import PayloadCipher

ENVELOPE = f"{{{SOAP_ENV_NS}}}Envelope"
HEADER = f"{{{SOAP_ENV_NS}}}Header"
BODY = f"{{{SOAP_ENV_NS}}}Body"
ROUTING = f"{{{GATEWAY_NS}}}Routing"


@dataclass(frozen=True)
class Recipient:
    """A participant id, or a role plus a region to be resolved through the directory."""

    participant: str | None = None
    role: str | None = None
    region: str | None = None

    def describe(self) -> str:
        return self.participant or f"the {self.role} responsible for region {self.region}"


@dataclass(frozen=True)
class Routing:
    message_id: str
    sender: str
    recipient: Recipient
    service_name: str
    service_version: str
    created_at: datetime
    correlation_id: str | None


@dataclass(frozen=True)
class EnvelopeParts:
    header: etree._Element
    routing: etree._Element
    body: etree._Element
    document: etree._Element  # the one child of the Body


def split_envelope(root: etree._Element) -> EnvelopeParts:
    """The Header, routing header, Body and Body document of a SOAP 1.1 envelope.

    Raises :class:`NotSoapEnvelope` or :class:`RoutingHeaderMissing`.
    """
    if root.tag != ENVELOPE:
        raise NotSoapEnvelope(f"the root element is {root.tag}, not a SOAP 1.1 Envelope ({ENVELOPE})")
    headers = [c for c in root if c.tag == HEADER]
    bodies = [c for c in root if c.tag == BODY]
    if len(headers) != 1 or len(bodies) != 1:
        raise NotSoapEnvelope(
            f"a SOAP envelope here has exactly one Header and one Body, not {len(headers)} and {len(bodies)}"
        )
    routings = [c for c in headers[0] if c.tag == ROUTING]
    if not routings:
        raise RoutingHeaderMissing(f"the SOAP Header carries no {ROUTING}")
    if len(routings) > 1:
        raise NotSoapEnvelope("the SOAP Header carries more than one routing header")
    documents = [c for c in bodies[0] if isinstance(c.tag, str)]
    if len(documents) != 1:
        raise NotSoapEnvelope(f"the SOAP Body must hold exactly one document, not {len(documents)}")
    return EnvelopeParts(headers[0], routings[0], bodies[0], documents[0])


def stored_envelope(payloads: PayloadCipher, message: Message) -> tuple[etree._Element, EnvelopeParts] | None:
    """The root and parts of ``message``'s stored envelope, as it arrived; None once it is unreadable
    (purged under the retention setting, or its key gone)."""
    try:
        envelope = payloads.open_envelope(message)
    except PayloadUnavailable:
        return None
    root = parse_untrusted(envelope).getroot()
    return root, split_envelope(root)


_NESTED = frozenset({f"{{{GATEWAY_NS}}}Recipient", f"{{{GATEWAY_NS}}}Service"})
_ROUTING_FIELDS = (
    "gw:CreatedAt",
    "gw:MessageId",
    "gw:Sender",
    "gw:Recipient/gw:Participant",
    "gw:Recipient/gw:Role",
    "gw:Recipient/gw:Region",
    "gw:Service/gw:Name",
    "gw:Service/gw:Version",
    "gw:CorrelationId",
)
# "gw:Recipient/gw:Role" -> "{ns}Recipient/{ns}Role": the keys ``read_routing`` files the children under.
_CLARK = {path: path.replace("gw:", f"{{{GATEWAY_NS}}}") for path in _ROUTING_FIELDS}


def read_routing(element: etree._Element) -> Routing:
    """The routing facts of a schema-valid routing header."""

    # Each field is a child (or a grandchild, under Recipient and Service) named once by the schema:
    # read by walking the children once, not by ten ElementPath look-ups, which cost about 2 % of the
    # intake's CPU (bench/intake/README.md).
    children: dict[str, etree._Element] = {}
    for child in element.iterchildren(tag=etree.Element):
        children.setdefault(child.tag, child)
        if child.tag in _NESTED:
            for grandchild in child.iterchildren(tag=etree.Element):
                children.setdefault(f"{child.tag}/{grandchild.tag}", grandchild)

    def text(path: str) -> str | None:
        node = children.get(_CLARK[path])
        return None if node is None or node.text is None else node.text.strip()

    created = text("gw:CreatedAt") or ""
    try:
        created_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        raise SchemaViolation(f"routing header CreatedAt {created!r} is not a date and time") from None
    if created_at.tzinfo is None:
        raise SchemaViolation("routing header CreatedAt needs a time zone (for example Z or +08:00)")
    return Routing(
        message_id=text("gw:MessageId") or "",
        sender=text("gw:Sender") or "",
        recipient=Recipient(
            participant=text("gw:Recipient/gw:Participant"),
            role=text("gw:Recipient/gw:Role"),
            region=text("gw:Recipient/gw:Region"),
        ),
        service_name=text("gw:Service/gw:Name") or "",
        service_version=text("gw:Service/gw:Version") or "",
        created_at=utc(created_at),
        correlation_id=text("gw:CorrelationId"),
    )
