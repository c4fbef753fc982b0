"""The documents an agency sends, rendered from the templates in ``agencies/templates/`` (data, one
file per service, shaped like ``examples/``), and reading the documents it receives.

Templates are Jinja2 with autoescaping on, so a name with ``&`` or ``<`` stays well-formed XML, and
``StrictUndefined``, so a missing value fails loudly instead of leaving an empty element.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from jinja2 import Environment, PackageLoader, StrictUndefined
from lxml import etree

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
NS = {
    "c": "urn:gradex:common:1",
    "reg": "urn:gradex:registration:1",
    "agr": "urn:gradex:agreement:1",
    "arc": "urn:gradex:archive:1",
    "ver": "urn:gradex:verification:1",
}
CHINA = timezone(timedelta(hours=8))

_templates = Environment(
    loader=PackageLoader("agencies", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render(template: str, **values: object) -> bytes:
    """The document of ``templates/<template>.xml`` filled with ``values``, as UTF-8 bytes."""
    return _templates.get_template(f"{template}.xml").render(**values).encode("utf-8")


def china_time(instant: datetime | None = None) -> str:
    """``instant`` (default now) as an xs:dateTime in China time, the way agencies write their times."""
    return (instant or datetime.now(UTC)).astimezone(CHINA).isoformat(timespec="seconds")


def business_document(envelope: etree._Element) -> etree._Element:
    """The document in a SOAP envelope's Body (the original a ``gw:Delivery`` carries)."""
    body = envelope.find(f"{{{SOAP_ENV_NS}}}Body")
    if body is None or len(body) != 1:
        raise ValueError("the envelope's Body does not hold exactly one document")
    return body[0]


def text(document: etree._Element, path: str) -> str:
    """The text of ``path`` (prefixes of :data:`NS`) in ``document``; raises ``ValueError`` when absent."""
    found = document.findtext(path, namespaces=NS)
    if found is None:
        raise ValueError(f"{etree.QName(document).localname} has no {path}")
    return found.strip()


def texts(document: etree._Element, path: str) -> list[str]:
    return [(e.text or "").strip() for e in document.iterfind(path, NS)]
