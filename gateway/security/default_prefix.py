"""Signatures whose InclusiveNamespaces PrefixList holds ``#default``, verified with libxmlsec.

Apache WSS4J writes ``PrefixList="#default ..."`` whenever an ancestor of a signed element declares
a default namespace; the Exclusive C14N recommendation defines the token. signxml canonicalises
through lxml, which passes on to libxml2 only the prefixes its name dictionary holds and so drops
``#default``: the canonical form then lacks the default namespace and a valid signature fails.
The XML Security Library (python-xmlsec, already pinned beside lxml) hands the list to libxml2 as it
is, as xmlsec1, Santuario and the JDK do; such signatures are verified with it.

Everything else was checked before, whichever library verifies: the structure and references
(``wsse``), the algorithms and key (``policy``), the XMLDSig schema (``dsig_schema``) and the
certificate (``trust``). Only the policy's algorithms are enabled here, and the key is the
checked certificate's: KeyInfo is not read.
"""

from __future__ import annotations

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from gateway.errors import SignatureInvalid
from gateway.security.wsse import DS_NS

EXC_C14N_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"
_C = xmlsec.constants
_DIGESTS = (_C.TransformSha256, _C.TransformSha384, _C.TransformSha512)
_REFERENCE_TRANSFORMS = (_C.TransformExclC14N, *_DIGESTS)
_SIGNATURE_TRANSFORMS = (
    _C.TransformExclC14N,
    _C.TransformRsaSha256,
    _C.TransformRsaSha384,
    _C.TransformRsaSha512,
    _C.TransformEcdsaSha256,
    _C.TransformEcdsaSha384,
    _C.TransformEcdsaSha512,
)
_PREFIX_LISTS = etree.XPath(".//ec:InclusiveNamespaces/@PrefixList", namespaces={"ec": EXC_C14N_NS})


def names_default_prefix(signature: etree._Element) -> bool:
    """Whether any InclusiveNamespaces PrefixList in ``signature`` holds the token ``#default``."""
    lists = _PREFIX_LISTS(signature)
    assert isinstance(lists, list)
    return any("#default" in str(value).split() for value in lists)


def verify_default_prefix_signature(signature: etree._Element, certificate: x509.Certificate) -> None:
    """Verify ``signature`` (a ds:Signature in its document) with ``certificate``'s key.

    Raises :class:`SignatureInvalid` when a digest or the signature value does not match.
    """
    if signature.tag != f"{{{DS_NS}}}Signature":
        raise SignatureInvalid("no ds:Signature to verify")
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(certificate.public_bytes(Encoding.PEM), xmlsec.constants.KeyDataFormatCertPem)
    # What the policy allows, again (defence in depth): once enabled, nothing else is.
    for transform in _REFERENCE_TRANSFORMS:
        context.enable_reference_transform(transform)
    for transform in _SIGNATURE_TRANSFORMS:
        context.enable_signature_transform(transform)
    # Ids resolve by the unqualified local name Id, in any namespace (wsu:Id and node-soap's Id),
    # as wsse resolved them: it already refused an Id used twice.
    xmlsec.tree.add_ids(signature.getroottree().getroot(), ["Id"])
    try:
        context.verify(signature)
    except xmlsec.Error as exc:
        raise SignatureInvalid(f"the signature does not verify: {exc}") from None
