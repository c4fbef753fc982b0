"""Sending signed example documents (or variants of them) through /soap in domain tests."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from lxml import etree

from gateway.sdk.envelope import wrap
from tests.conftest import Signer, example

NS = {"gw": "urn:gradex:gateway:1"}


def replace_text(document: bytes, element: str, value: str, count: int = 1) -> bytes:
    """``document`` with the text of the first ``count`` elements named ``element`` (with prefix) replaced."""
    pattern = re.compile(rb"(<" + element.encode() + rb">)[^<]*(</" + element.encode() + rb">)")
    replaced, n = pattern.subn(rb"\g<1>" + value.encode() + rb"\g<2>", document, count=count)
    assert n, f"{element} not in the document"
    return replaced


def send(
    client: FlaskClient,
    sign: Signer,
    document: bytes | str,
    sender: str,
    recipient: str,
    service: str | None = None,
) -> tuple[str | None, str]:
    """Post the signed document; returns (fault code or None, fault message or receipt recipient)."""
    data = example(document) if isinstance(document, str) else document
    service = service or etree.QName(etree.fromstring(data)).localname
    envelope = sign(wrap(data, sender=sender, recipient=recipient, service=service), as_=sender)
    response = client.post("/soap", data=envelope, content_type="text/xml")
    body = etree.fromstring(response.data)
    code = body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS)
    if code is not None:
        return code, body.findtext(".//gw:FaultDetail/gw:Message", namespaces=NS) or ""
    assert response.status_code == 200
    return None, body.findtext(".//gw:Receipt/gw:Recipient", namespaces=NS) or ""
