"""Validating a ds:Signature against XMLDSig 1.1 plus Exclusive C14N's InclusiveNamespaces.

signxml validates against XMLDSig alone, whose CanonicalizationMethod admits only declared
elements strictly: the ``ec:InclusiveNamespaces`` that Apache WSS4J writes there by default would
fail. The gateway therefore validates here, against signxml's bundled XMLDSig schema and
``schemas/exc-c14n.xsd``, and tells signxml not to validate again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import cast

from lxml import etree

from gateway.errors import SignatureInvalid
from gateway.settings import SCHEMAS_DIR
from gateway.xmlparse import hardened_parser, schema_parser

_local = threading.local()
DSIG11_NS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"


def _validator() -> etree.XMLSchema:
    # One per thread: an XMLSchema keeps the errors of its last validation in its error_log.
    schema: etree.XMLSchema | None = getattr(_local, "schema", None)
    if schema is None:
        signxml_schemas = Path(str(resources.files("signxml.schemas")))
        dsig = signxml_schemas / "xmldsig1-schema.xsd"
        driver = (
            '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
            f'<xs:import namespace="{DSIG11_NS}" schemaLocation="{dsig}"/>'
            f'<xs:import namespace="{EXC_C14N_NS}" schemaLocation="{(SCHEMAS_DIR / "exc-c14n.xsd").as_uri()}"/>'
            "</xs:schema>"
        )
        schema = etree.XMLSchema(etree.fromstring(driver.encode(), parser=schema_parser(SCHEMAS_DIR, signxml_schemas)))
        _local.schema = schema
    return schema


def validate_signature_element(signature: etree._Element) -> None:
    """Raise :class:`SignatureInvalid` naming the first schema error of ``signature``."""
    validator = _validator()
    # Validate a copy as its own document: the schema must see ds:Signature as the root.
    if validator.validate(etree.ElementTree(etree.fromstring(etree.tostring(signature), parser=hardened_parser()))):
        return
    errors = list(cast(Iterable[etree._LogEntry], validator.error_log))
    detail = errors[0].message if errors else "schema error"
    raise SignatureInvalid(f"the ds:Signature is not valid XMLDSig: {detail}")
