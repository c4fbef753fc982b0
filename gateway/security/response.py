"""WS-Security signatures on the gateway's own SOAP responses: answers and faults.

The profile is the one the gateway asks of senders (docs/signing.md): one ``wsse:Security``
header (``mustUnderstand="1"``) holding a ``wsu:Timestamp``, the gateway certificate as a
``wsse:BinarySecurityToken`` and one ``ds:Signature`` over the ``soapenv:Body`` and the Timestamp,
both referenced by ``wsu:Id``; exclusive C14N, SHA-256 digests, ECDSA-SHA256 or RSA-SHA256 after
the gateway's key; ``KeyInfo`` is a ``wsse:SecurityTokenReference`` to the token. Clients that sign
(zeep's ``BinarySignature``, WSS4J, WCF) expect such an answer; the signed receipt (or answer)
inside the Body is left exactly as it is.

Why by hand, in this one place: it is on every response of the intake. The Timestamp and
``SignedInfo`` are written directly in their exclusive-C14N form (fixed templates; only Ids, times
and base64 text vary, none of which C14N changes), so the only canonicalisation is the Body's, by
lxml, and the only cryptography one signature by ``cryptography``: about a third of what
python-xmlsec takes for the same response (``bench/responses.py``). The tests verify the result
with xmlsec (zeep's own check), with signxml and by recomputing every canonical form with lxml.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import serialization
from lxml import etree

from gateway.intake.catalog import SOAP_ENV_NS
from gateway.pki.keystore import KeyStore
from gateway.security.signer import signature_method, signature_value
from gateway.security.wsse import BASE64_BINARY, DS_NS, SHA256_URI, WSSE_NS, WSU_NS, X509_V3

EXC_C14N_URI = "http://www.w3.org/2001/10/xml-exc-c14n#"

# The Body is parsed on its own to canonicalise it: it declares every namespace it has in scope in
# the full envelope (soapenv from the Envelope, wsu for its Id), so its exclusive C14N is the same.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, remove_blank_text=False)
_DECLARATION = b"<?xml version='1.0' encoding='UTF-8'?>\n"
_ENVELOPE_OPEN = f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}"><soapenv:Header>'.encode()
_REFERENCE = (
    '<ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="' + EXC_C14N_URI + '"></ds:Transform>'
    '</ds:Transforms><ds:DigestMethod Algorithm="' + SHA256_URI + '"></ds:DigestMethod>'
    "<ds:DigestValue>{digest}</ds:DigestValue></ds:Reference>"
)


class ResponseSigner:
    """Signs the gateway's SOAP responses with its key. Thread-safe: no state changes per call."""

    def __init__(self, keys: KeyStore, ttl: timedelta = timedelta(minutes=5)) -> None:
        self._key = keys.signing_key()
        method = signature_method(self._key)
        self._signed_info_open = (
            f'<ds:SignedInfo xmlns:ds="{DS_NS}"><ds:CanonicalizationMethod Algorithm="{EXC_C14N_URI}">'
            f'</ds:CanonicalizationMethod><ds:SignatureMethod Algorithm="{method}"></ds:SignatureMethod>'
        )
        token = base64.b64encode(keys.certificate().public_bytes(serialization.Encoding.DER)).decode("ascii")
        self._token = (
            f'<wsse:BinarySecurityToken ValueType="{X509_V3}" EncodingType="{BASE64_BINARY}" wsu:Id="X509-{{id}}">'
            f"{token}</wsse:BinarySecurityToken>"
        )
        self._ttl = ttl

    def envelope(self, body_child: bytes, now: datetime, canonical: bool = False) -> bytes:
        """The SOAP 1.1 envelope with ``body_child`` (serialised, an answer or a soapenv:Fault) in its
        Body, signed: a Timestamp of ``now`` and the Body under the gateway's WS-Security signature.

        ``body_child`` is spliced in as it is, never re-serialised (signed elements inside it keep
        their prefixes). Raises ``lxml.etree.XMLSyntaxError`` if it is not well-formed.
        ``canonical``: the caller wrote ``body_child`` in exclusive canonical form (a receipt,
        ``gateway.security.receipt.build_receipt``), so the Body, whose start tag is written
        canonical too, is digested as it is, without being parsed and canonicalised.
        """
        suffix = uuid.uuid4().hex  # unique: a mailbox answer carries other messages' Ids in its Body
        body = (
            f'<soapenv:Body xmlns:soapenv="{SOAP_ENV_NS}" xmlns:wsu="{WSU_NS}" wsu:Id="Body-{suffix}">'.encode()
            + body_child
            + b"</soapenv:Body>"
        )
        if not canonical:
            body_digest = _digest(etree.tostring(etree.fromstring(body, _PARSER), method="c14n", exclusive=True))
        else:
            body_digest = _digest(body)
        # Written in canonical form: the namespace declaration its exclusive C14N puts on it, an
        # end tag for every element, times with milliseconds and Z.
        timestamp = (
            f'<wsu:Timestamp xmlns:wsu="{WSU_NS}" wsu:Id="TS-{suffix}"><wsu:Created>{_instant(now)}</wsu:Created>'
            f"<wsu:Expires>{_instant(now + self._ttl)}</wsu:Expires></wsu:Timestamp>"
        ).encode()
        signed_info = (
            self._signed_info_open
            + _REFERENCE.format(id=f"Body-{suffix}", digest=body_digest)
            + _REFERENCE.format(id=f"TS-{suffix}", digest=_digest(timestamp))
            + "</ds:SignedInfo>"
        )
        security = (
            f'<wsse:Security xmlns:wsse="{WSSE_NS}" xmlns:wsu="{WSU_NS}" soapenv:mustUnderstand="1">'.encode()
            + timestamp
            + self._token.replace("{id}", suffix).encode()
            + f'<ds:Signature xmlns:ds="{DS_NS}">'.encode()
            + signed_info.encode()
            + f"<ds:SignatureValue>{self._sign(signed_info.encode())}</ds:SignatureValue>".encode()
            + f'<ds:KeyInfo><wsse:SecurityTokenReference><wsse:Reference URI="#X509-{suffix}" ValueType="{X509_V3}"/>'
            "</wsse:SecurityTokenReference></ds:KeyInfo></ds:Signature></wsse:Security>".encode()
        )
        return _DECLARATION + _ENVELOPE_OPEN + security + b"</soapenv:Header>" + body + b"</soapenv:Envelope>"

    def _sign(self, data: bytes) -> str:
        return signature_value(self._key, data)


def _digest(canonical: bytes) -> str:
    return base64.b64encode(hashlib.sha256(canonical).digest()).decode("ascii")


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
