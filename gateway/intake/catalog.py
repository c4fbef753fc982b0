"""The service catalog, read from the published WSDL, and the schema set that validates messages.

The WSDL in ``schemas/gateway.wsdl`` is the one source of truth for which services exist: each
operation is a service, named like its request element; the service version is the last segment
of that element's namespace (``urn:gradex:archive:1`` -> ``1``). Services whose request element
is in the gateway's own namespace are the reliable-delivery plumbing (``Service.is_plumbing``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from gateway.errors import ConfigurationError
from gateway.xmlparse import schema_parser

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
GATEWAY_NS = "urn:gradex:gateway:1"
DIRECTORY_NS = "urn:gradex:directory:1"
RECEIPT_ELEMENT = f"{{{GATEWAY_NS}}}Receipt"
WSDL_FILE = "gateway.wsdl"
ENVELOPE_XSD = "soap-envelope-1.1.xsd"


@dataclass(frozen=True)
class Service:
    """One service of the catalog (one WSDL operation)."""

    name: str
    version: str
    request_element: str  # Clark notation, {namespace}local
    response_element: str

    @property
    def namespace(self) -> str:
        return self.request_element[1:].split("}", 1)[0]

    @property
    def is_plumbing(self) -> bool:
        """A service of the gateway itself (mailbox, status, delivery receipt), not a business document.

        Its request element is in the gateway's own namespace; it is addressed to the sender's own
        participant id and answered by the gateway, never delivered to anyone.
        """
        return self.namespace == GATEWAY_NS

    @property
    def answered_with_receipt(self) -> bool:
        """The WSDL answers it with the signed ``gw:Receipt`` (the others with the gateway's own answer)."""
        return self.response_element == RECEIPT_ELEMENT

    @property
    def is_own_entry(self) -> bool:
        """A change to the sender's own directory entry (``DirectoryEntryUpdate``): addressed to the
        sender's own participant id, checked and applied by the domain rules, answered with the
        signed receipt, delivered to nobody."""
        return self.namespace == DIRECTORY_NS

    @property
    def is_delivered(self) -> bool:
        """A business document delivered to its recipient: answered with the signed ``gw:Receipt``.

        The others are answered by the gateway itself and delivered to nobody: the plumbing, the
        graduate verification (answered from the filed registrations, ``gateway.grants.answer``)
        and a participant's change to its own directory entry.
        """
        return self.answered_with_receipt and not self.is_own_entry


class ServiceCatalog:
    """Services by name and by request element, plus the XSD set that validates a whole envelope."""

    def __init__(self, schemas_dir: Path) -> None:
        self.schemas_dir = schemas_dir.resolve()
        self.wsdl_path = self.schemas_dir / WSDL_FILE
        try:
            wsdl = etree.parse(str(self.wsdl_path), parser=schema_parser(self.schemas_dir))
        except (OSError, etree.XMLSyntaxError) as exc:
            raise ConfigurationError(f"cannot read the WSDL {self.wsdl_path}: {exc}") from None
        self.services = _services(wsdl)
        self._by_element = {s.request_element: s for s in self.services}
        self._by_name = {(s.name, s.version): s for s in self.services}
        self.schema_files = _imported_schema_files(wsdl)
        self._local = threading.local()
        self._envelope_schema()  # fail at start-up, not on the first message, if the schemas are broken

    def by_element(self, tag: str) -> Service | None:
        return self._by_element.get(tag)

    def get(self, name: str, version: str) -> Service | None:
        return self._by_name.get((name, version))

    @property
    def schema(self) -> etree.XMLSchema:
        """This thread's validator for whole envelopes.

        One per thread: an ``XMLSchema`` keeps the errors of its last ``validate`` in its
        ``error_log``, so a shared one would hand a thread another request's errors.
        """
        schema: etree.XMLSchema | None = getattr(self._local, "schema", None)
        if schema is None:
            schema = self._envelope_schema()
            self._local.schema = schema
        return schema

    def _envelope_schema(self) -> etree.XMLSchema:
        # One schema that imports the SOAP envelope, the gateway vocabulary and every service schema:
        # a single validation pass covers the envelope, the routing header and the Body document.
        imports = [(SOAP_ENV_NS, ENVELOPE_XSD), *self.schema_files]
        text = "".join(
            f'<xs:import namespace="{ns}" schemaLocation="{(self.schemas_dir / loc).as_uri()}"/>' for ns, loc in imports
        )
        driver = f'<xs:schema xmlns:xs="{XSD_NS}">{text}</xs:schema>'
        try:
            return etree.XMLSchema(etree.fromstring(driver.encode(), parser=schema_parser(self.schemas_dir)))
        except (etree.XMLSchemaParseError, ConfigurationError) as exc:
            raise ConfigurationError(f"the schemas in {self.schemas_dir} do not load: {exc}") from None


def _services(wsdl: etree._ElementTree) -> list[Service]:
    ns = {"wsdl": WSDL_NS}
    root = wsdl.getroot()
    target = root.get("targetNamespace", "")
    prefixes = root.nsmap
    messages: dict[str, str] = {}
    for message in root.iterfind("wsdl:message", ns):
        part = message.find("wsdl:part", ns)
        if part is not None and part.get("element"):
            messages[message.get("name", "")] = _clark(part.get("element", ""), prefixes)
    services = []
    for operation in root.iterfind("wsdl:portType/wsdl:operation", ns):
        name = operation.get("name", "")
        request = _message_element(operation, "wsdl:input", messages, prefixes, target)
        response = _message_element(operation, "wsdl:output", messages, prefixes, target)
        version = request[1:].split("}", 1)[0].rsplit(":", 1)[-1]
        services.append(Service(name=name, version=version, request_element=request, response_element=response))
    if not services:
        raise ConfigurationError("the WSDL defines no operations")
    return services


def _message_element(
    operation: etree._Element, child: str, messages: dict[str, str], prefixes: dict[str | None, str], target: str
) -> str:
    node = operation.find(child, {"wsdl": WSDL_NS})
    if node is None:
        raise ConfigurationError(f"operation {operation.get('name')} has no {child}")
    local = node.get("message", "").split(":")[-1]
    if local not in messages:
        raise ConfigurationError(f"operation {operation.get('name')} refers to unknown message {local}")
    return messages[local]


def _clark(qname: str, prefixes: dict[str | None, str]) -> str:
    prefix, _, local = qname.rpartition(":")
    return f"{{{prefixes[prefix or None]}}}{local}"


def _imported_schema_files(wsdl: etree._ElementTree) -> list[tuple[str, str]]:
    found = []
    for node in wsdl.getroot().iterfind(f"{{{WSDL_NS}}}types/{{{XSD_NS}}}schema/{{{XSD_NS}}}import"):
        found.append((node.get("namespace", ""), node.get("schemaLocation", "")))
    return found
