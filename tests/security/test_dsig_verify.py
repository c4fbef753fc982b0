"""The gateway's own signature check (``gateway.security.dsig_verify``) against signxml, the verifier it replaced.

Every envelope here goes through the verification stage (``VerifySignature``: structure, algorithms,
timestamp, certificate, then the signature) twice: as the gateway runs it, and with signxml's
``XMLVerifier``, configured as the stage configured it before, in place of the gateway's check. Both
must come to the same verdict, and that verdict is stated: acceptance, or the fault code. Envelopes
are signed by the SDK, by signxml and by python-xmlsec (libxmlsec1, a third implementation, from a
template), with RSA and ECDSA keys; the tampered ones change what was signed after signing.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes as PublicKey
from lxml import etree
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

import gateway.security.verify as verify_module
from gateway.errors import Fault, SignatureInvalid
from gateway.intake.envelope import read_routing, split_envelope
from gateway.intake.pipeline import Inbound
from gateway.pki.keystore import PrivateKey, load_private_key
from gateway.sdk.signing import sign_envelope_bytes
from gateway.security.default_prefix import verify_default_prefix_signature
from gateway.security.dsig_verify import verify_signature
from gateway.security.policy import ALLOWED_DIGESTS, ALLOWED_SIGNATURE_METHODS, EXCLUSIVE_C14N
from gateway.security.trust import TrustStore
from gateway.security.verify import SIGNATURE_LOCATION, VerifySignature
from gateway.security.wsse import SecurityHeader, read_security_header
from gateway.settings import Settings
from gateway.xmlparse import parse_untrusted
from tests.conftest import AGENCY_CHAOYANG, UNIVERSITY, credentials
from tests.security.test_verification import body_moved_into_a_header
from tests.security.variants import (
    DS_NS,
    NS,
    development_ca,
    element_id,
    header_block,
    one,
    parse,
    registration,
    serialise,
    sign_custom,
    sign_with_zeep,
)

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
DSIG11_NS = "http://www.w3.org/2009/xmldsig11#"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
ACCEPTED = "accepted"


@dataclass(frozen=True)
class Signer:
    """One key of the university, its certificate and the folder holding both (for zeep)."""

    key: PrivateKey
    certificate: x509.Certificate
    folder: Path


@dataclass(frozen=True)
class Kit:
    rsa: Signer
    ec: Signer
    settings: Settings


@pytest.fixture
def kit(settings: Settings, tmp_path: Path) -> Kit:
    university = credentials(settings.keys_dir, UNIVERSITY)
    issued = development_ca(settings).issue(tmp_path / "ec", UNIVERSITY, "EC test", datetime.now(UTC), "ec")
    return Kit(
        rsa=Signer(university.key, university.certificate, settings.keys_dir / "participants" / UNIVERSITY),
        ec=Signer(load_private_key(issued.key_path), issued.certificate, tmp_path / "ec"),
        settings=settings,
    )


# --- the two verdicts -------------------------------------------------------------------------


def signxml_verify(header: SecurityHeader, certificate: x509.Certificate) -> None:
    """The signature check as the stage made it with signxml (until issue 13)."""
    config = SignatureConfiguration(
        location=SIGNATURE_LOCATION,
        expect_references=header.reference_count,
        signature_methods=ALLOWED_SIGNATURE_METHODS,
        digest_algorithms=ALLOWED_DIGESTS,
        default_reference_c14n_method=EXCLUSIVE_C14N,
    )
    root = header.signature.getroottree().getroot()
    try:
        XMLVerifier().verify(
            root, x509_cert=certificate, id_attribute="Id", expect_config=config, validate_schema=False
        )
    except SignXMLException as exc:
        raise SignatureInvalid(f"signxml: {exc}") from None


def verdict(kit: Kit, data: bytes) -> str:
    """``accepted``, or the code of the fault with which the verification stage refuses ``data``."""
    root = parse_untrusted(data).getroot()
    parts = split_envelope(root)
    inbound = Inbound(
        raw=data,
        received_at=datetime.now(UTC),
        tree=root.getroottree(),
        parts=parts,
        routing=read_routing(parts.routing),
    )
    stage = VerifySignature(TrustStore(kit.settings.anchors, kit.settings.crls))
    try:
        stage(inbound, None)  # type: ignore[arg-type]  # the stage uses no database
    except Fault as fault:
        return fault.code
    assert inbound.security is not None
    return ACCEPTED


def xmlsec_verify(header: SecurityHeader, certificate: x509.Certificate) -> None:
    """The signature checked by python-xmlsec (libxmlsec1), a third implementation."""
    verify_default_prefix_signature(header.signature, certificate)


Judge = Callable[[SecurityHeader, x509.Certificate], None]


def verdicts(kit: Kit, data: bytes, monkeypatch: pytest.MonkeyPatch, judge: Judge = signxml_verify) -> tuple[str, str]:
    """(the gateway's verdict, the verdict with ``judge``, by default signxml, checking the signature instead)."""
    ours = verdict(kit, data)
    with monkeypatch.context() as patched:
        patched.setattr(verify_module, "verify_signature", judge)
        theirs = verdict(kit, data)
    return ours, theirs


# --- signing, three ways ----------------------------------------------------------------------


def sdk(signer: Signer, key_info: str = "binary-token") -> bytes:
    return sign_envelope_bytes(registration(), signer.key, signer.certificate, key_info=key_info)  # type: ignore[arg-type]


def resigned_by_xmlsec(data: bytes, signer: Signer, change: Callable[[etree._Element], None]) -> bytes:
    """``data`` with its SignedInfo changed by ``change``, then digested and signed anew by python-xmlsec."""
    root = parse(data)
    signature = one(root, "//ds:Signature")
    change(signature)
    for value in signature.iterfind(".//ds:DigestValue", NS):
        value.text = ""
    one(signature, "ds:SignatureValue").text = ""
    context = xmlsec.SignatureContext()
    pem = signer.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    context.key = xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatPem)
    xmlsec.tree.add_ids(root, ["Id"])
    context.sign(signature)
    return serialise(root)


def inclusive_namespaces(prefixes: str, where: str = "ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform"):  # type: ignore[no-untyped-def]
    def change(signature: etree._Element) -> None:
        for parent in signature.xpath(where, namespaces=NS):
            etree.SubElement(parent, f"{{{EXC_C14N}}}InclusiveNamespaces", PrefixList=prefixes, nsmap={"ec": EXC_C14N})

    return change


def second_transform(signature: etree._Element) -> None:
    """Each reference's transform keeps ``extra`` (see :func:`extra_namespace`); a second one drops it again."""
    for transforms in signature.iterfind("ds:SignedInfo/ds:Reference/ds:Transforms", NS):
        first = one(transforms, "ds:Transform")
        etree.SubElement(first, f"{{{EXC_C14N}}}InclusiveNamespaces", PrefixList="extra", nsmap={"ec": EXC_C14N})
        etree.SubElement(transforms, f"{{{DS_NS}}}Transform", Algorithm=EXC_C14N)


def no_transforms(signature: etree._Element) -> None:
    for transforms in signature.iterfind("ds:SignedInfo/ds:Reference/ds:Transforms", NS):
        transforms.getparent().remove(transforms)  # type: ignore[union-attr]


def extra_namespace(data: bytes, uri: str = "urn:example:extra") -> bytes:
    """``data`` with a namespace declared on the Envelope that no signed element uses itself."""
    return data.replace(b"<soapenv:Envelope ", f'<soapenv:Envelope xmlns:extra="{uri}" '.encode(), 1)


# --- accepted by both -------------------------------------------------------------------------


def key_value(key: PublicKey) -> etree._Element:
    """A ds:KeyValue holding ``key``."""
    value = etree.Element(f"{{{DS_NS}}}KeyValue", nsmap={"ds": DS_NS})
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        rsa_value = etree.SubElement(value, f"{{{DS_NS}}}RSAKeyValue")
        for name, number in (("Modulus", numbers.n), ("Exponent", numbers.e)):
            etree.SubElement(rsa_value, f"{{{DS_NS}}}{name}").text = base64.b64encode(
                number.to_bytes((number.bit_length() + 7) // 8, "big")
            ).decode()
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        ec_value = etree.SubElement(value, f"{{{DSIG11_NS}}}ECKeyValue", nsmap={"dsig11": DSIG11_NS})
        etree.SubElement(ec_value, f"{{{DSIG11_NS}}}NamedCurve", URI="urn:oid:1.2.840.10045.3.1.7")
        point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        etree.SubElement(ec_value, f"{{{DSIG11_NS}}}PublicKey").text = base64.b64encode(point).decode()
    return value


def der_key_value(key: PublicKey) -> etree._Element:
    value = etree.Element(f"{{{DSIG11_NS}}}DEREncodedKeyValue", nsmap={"dsig11": DSIG11_NS})
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    value.text = base64.b64encode(der).decode()
    return value


def with_key_info(element: Callable[[PublicKey], etree._Element], of: str) -> Callable[[Kit, Signer], bytes]:
    """Signed by the SDK, with ``element`` added to KeyInfo, made from the signer's own public key
    (``of="self"``), another key of the same type (``"same-type"``) or the sender's key of the other type."""

    def make(kit: Kit, signer: Signer) -> bytes:
        own = signer.key.public_key()
        if of == "self":
            key: PublicKey = own
        elif of == "same-type":
            other_key = rsa.generate_private_key(65537, 2048) if isinstance(own, rsa.RSAPublicKey) else None
            key = (other_key or ec.generate_private_key(ec.SECP256R1())).public_key()
        else:
            key = (kit.ec if signer is kit.rsa else kit.rsa).key.public_key()
        root = parse(sdk(signer))
        one(root, "//ds:Signature/ds:KeyInfo").append(element(key))
        return serialise(root)  # KeyInfo is not signed: the SDK's signature still holds

    return make


ACCEPTED_ENVELOPES: dict[str, Callable[[Kit, Signer], bytes]] = {
    "sdk-binary-token": lambda kit, signer: sdk(signer),
    "sdk-x509-data": lambda kit, signer: sdk(signer, "x509-data"),
    "signxml-unqualified-ids": lambda kit, signer: sign_custom(
        registration(), signer.key, signer.certificate, id_attribute="Id"
    ),
    "signxml-routing-bound-by-timestamp": lambda kit, signer: sign_custom(
        registration(), signer.key, signer.certificate, parts=("Body", "Timestamp"), bind_routing=True
    ),
    "xmlsec-as-the-sdk-structures-it": lambda kit, signer: resigned_by_xmlsec(sdk(signer), signer, lambda s: None),
    "xmlsec-prefix-list-in-transforms": lambda kit, signer: resigned_by_xmlsec(
        extra_namespace(sdk(signer)), signer, inclusive_namespaces("extra soapenv")
    ),
    "xmlsec-prefix-list-in-signedinfo": lambda kit, signer: resigned_by_xmlsec(
        extra_namespace(sdk(signer)),
        signer,
        inclusive_namespaces("extra wsse", "ds:SignedInfo/ds:CanonicalizationMethod"),
    ),
    "key-value-of-the-certificate": with_key_info(key_value, "self"),
    "der-encoded-key-value-of-the-certificate": with_key_info(der_key_value, "self"),
}
KEYS = ["rsa", "ec"]


@pytest.mark.parametrize("key_type", KEYS)
@pytest.mark.parametrize("make", ACCEPTED_ENVELOPES.values(), ids=ACCEPTED_ENVELOPES.keys())
def test_what_signxml_accepts_the_gateway_accepts(
    kit: Kit, monkeypatch: pytest.MonkeyPatch, key_type: str, make: Callable[[Kit, Signer], bytes]
) -> None:
    data = make(kit, getattr(kit, key_type))
    assert verdicts(kit, data, monkeypatch) == (ACCEPTED, ACCEPTED)


def test_zeeps_xmlsec_signature_is_accepted_by_both(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    data = sign_with_zeep(registration(), kit.rsa.folder, xmlsec.Transform.RSA_SHA256, xmlsec.Transform.SHA256)
    assert verdicts(kit, data, monkeypatch) == (ACCEPTED, ACCEPTED)


@pytest.mark.parametrize("algorithm", KEYS)
def test_two_exclusive_c14n_transforms_are_applied_in_turn(
    kit: Kit, monkeypatch: pytest.MonkeyPatch, algorithm: str
) -> None:
    """The second transform canonicalises the octets of the first (with its own PrefixList), as
    libxmlsec1 does, which signs and verifies it here. (signxml failed on it with a TypeError, which
    the gateway answered as an INTERNAL_ERROR: it is no judge of this case.)"""
    signer: Signer = getattr(kit, algorithm)
    data = resigned_by_xmlsec(extra_namespace(sdk(signer)), signer, second_transform)
    assert len(parse(data).xpath("//ds:Reference[1]/ds:Transforms/ds:Transform", namespaces=NS)) == 2
    assert verdicts(kit, data, monkeypatch, judge=xmlsec_verify) == (ACCEPTED, ACCEPTED)
    root = parse(data)
    changed("soapenv:Body/reg:DestinationRegistration/reg:DestinationCode", "11")(root)
    assert verdicts(kit, serialise(root), monkeypatch, judge=xmlsec_verify) == ("SIGNATURE_INVALID",) * 2


# --- refused by both, with the same fault ------------------------------------------------------


def changed(path: str, text: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        one(root, path).text = text

    return change


def references_swapped(root: etree._Element) -> None:
    """SignedInfo with its first two references in the other order: every digest still matches."""
    first, second = root.xpath("//ds:SignedInfo/ds:Reference", namespaces=NS)[:2]
    first.addprevious(second)


def signature_value_changed(root: etree._Element) -> None:
    value = one(root, "//ds:SignatureValue")
    raw = bytearray(base64.b64decode("".join((value.text or "").split())))
    raw[len(raw) // 2] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()


def signature_value_shortened(root: etree._Element) -> None:
    value = one(root, "//ds:SignatureValue")
    value.text = base64.b64encode(base64.b64decode("".join((value.text or "").split()))[:-1]).decode()


def body_id_given_to_a_header_block(root: etree._Element) -> None:
    header_block(root, wsu_Id=element_id(one(root, "soapenv:Body")))


def routing_reference_to_the_token(root: etree._Element) -> None:
    token = element_id(one(root, "//wsse:BinarySecurityToken"))
    routing = element_id(one(root, "soapenv:Header/gw:Routing"))
    one(root, f"//ds:Reference[@URI='#{routing}']").set("URI", f"#{token}")


def algorithm(path: str, uri: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        one(root, path).set("Algorithm", uri)

    return change


def relative_namespace_on_the_body(root: etree._Element) -> None:
    body = one(root, "soapenv:Body")
    copied = etree.Element(body.tag, dict(body.attrib), nsmap={**body.nsmap, "rel": "relative/uri"})
    copied.extend(list(body))
    root.replace(body, copied)


TAMPERED: dict[str, tuple[Callable[[etree._Element], None], str]] = {
    "body-text-changed": (
        changed("soapenv:Body/reg:DestinationRegistration/reg:DestinationCode", "11"),
        "SIGNATURE_INVALID",
    ),
    "routing-recipient-changed": (
        changed("soapenv:Header/gw:Routing/gw:Recipient/gw:Participant", AGENCY_CHAOYANG),
        "SIGNATURE_INVALID",
    ),
    "timestamp-expires-changed": (changed("//wsu:Timestamp/wsu:Expires", "2099-01-01T00:00:00Z"), "SIGNATURE_INVALID"),
    "signedinfo-references-swapped": (references_swapped, "SIGNATURE_INVALID"),
    "signedinfo-digest-value-changed": (
        changed("//ds:SignedInfo/ds:Reference[1]/ds:DigestValue", base64.b64encode(bytes(32)).decode()),
        "SIGNATURE_INVALID",
    ),
    "signature-value-changed": (signature_value_changed, "SIGNATURE_INVALID"),
    "signature-value-shortened": (signature_value_shortened, "SIGNATURE_INVALID"),
    "body-moved-into-a-header": (body_moved_into_a_header, "SIGNATURE_INVALID"),
    "body-id-used-twice": (body_id_given_to_a_header_block, "SIGNATURE_INVALID"),
    "reference-to-another-element": (routing_reference_to_the_token, "SIGNATURE_INVALID"),
    "sha1-digest": (algorithm("//ds:SignedInfo/ds:Reference[1]/ds:DigestMethod", SHA1), "ALGORITHM_NOT_ALLOWED"),
    "rsa-sha1-method": (algorithm("//ds:SignedInfo/ds:SignatureMethod", RSA_SHA1), "ALGORITHM_NOT_ALLOWED"),
    "relative-namespace-uri-in-the-body": (relative_namespace_on_the_body, "SIGNATURE_INVALID"),
}


@pytest.mark.parametrize("key_type", KEYS)
@pytest.mark.parametrize(("tamper", "code"), TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_envelope_is_refused_with_the_fault_signxml_gave(
    kit: Kit, monkeypatch: pytest.MonkeyPatch, key_type: str, tamper: Callable[[etree._Element], None], code: str
) -> None:
    signer: Signer = getattr(kit, key_type)
    data = sdk(signer)
    assert verdicts(kit, data, monkeypatch) == (ACCEPTED, ACCEPTED)
    root = parse(data)
    tamper(root)
    assert verdicts(kit, serialise(root), monkeypatch) == (code, code)


def test_a_signature_by_another_key_of_the_sender_is_refused(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signed with the RSA key, the EC certificate (valid, the same participant's) put in its place."""
    root = parse(sdk(kit.rsa))
    other = base64.b64encode(kit.ec.certificate.public_bytes(serialization.Encoding.DER)).decode()
    one(root, "//wsse:BinarySecurityToken").text = other
    one(root, "//ds:SignedInfo/ds:SignatureMethod").set(
        "Algorithm", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    )
    assert verdicts(kit, serialise(root), monkeypatch) == ("SIGNATURE_INVALID", "SIGNATURE_INVALID")


@pytest.mark.parametrize("key_type", KEYS)
@pytest.mark.parametrize(
    "make",
    [with_key_info(key_value, "same-type"), with_key_info(der_key_value, "same-type")],
    ids=["key-value-of-another-key", "der-encoded-key-value-of-another-key"],
)
def test_a_key_value_beside_the_certificate_must_be_its_key(
    kit: Kit, monkeypatch: pytest.MonkeyPatch, key_type: str, make: Callable[[Kit, Signer], bytes]
) -> None:
    data = make(kit, getattr(kit, key_type))
    assert verdicts(kit, data, monkeypatch) == ("SIGNATURE_INVALID", "SIGNATURE_INVALID")


@pytest.mark.parametrize("key_type", KEYS)
@pytest.mark.parametrize(
    "make",
    [with_key_info(key_value, "other-type"), with_key_info(der_key_value, "other-type")],
    ids=["key-value", "der-encoded-key-value"],
)
def test_a_key_value_of_another_key_type_is_refused(
    kit: Kit, key_type: str, make: Callable[[Kit, Signer], bytes]
) -> None:
    """(signxml raised NotImplementedError on a DEREncodedKeyValue of another type: an INTERNAL_ERROR.)"""
    assert verdict(kit, make(kit, getattr(kit, key_type))) == "SIGNATURE_INVALID"


@pytest.mark.parametrize("key_type", KEYS)
def test_an_inclusive_namespace_is_signed(kit: Kit, monkeypatch: pytest.MonkeyPatch, key_type: str) -> None:
    """A namespace named in a transform's PrefixList is part of each digest: changing it breaks them."""
    signer: Signer = getattr(kit, key_type)
    data = resigned_by_xmlsec(extra_namespace(sdk(signer)), signer, inclusive_namespaces("extra"))
    assert verdicts(kit, data, monkeypatch) == (ACCEPTED, ACCEPTED)
    forged = data.replace(b'xmlns:extra="urn:example:extra"', b'xmlns:extra="urn:example:forged"', 1)
    assert forged != data
    assert verdicts(kit, forged, monkeypatch) == ("SIGNATURE_INVALID", "SIGNATURE_INVALID")


@pytest.mark.parametrize("key_type", KEYS)
def test_two_inclusive_namespaces_lists_in_one_transform_are_refused(kit: Kit, key_type: str) -> None:
    """Which list counts would be a guess (signxml read the first; libxmlsec1 will not sign it): refused."""
    signer: Signer = getattr(kit, key_type)
    data = resigned_by_xmlsec(extra_namespace(sdk(signer)), signer, inclusive_namespaces("extra"))
    assert verdict(kit, data) == ACCEPTED
    root = parse(data)
    inclusive_namespaces("gw")(one(root, "//ds:Signature"))
    with pytest.raises(SignatureInvalid, match="one ec:InclusiveNamespaces, not several"):
        verify_signature(read_security_header(root, split_envelope(root)), signer.certificate)


def test_references_without_transforms_are_canonicalised_as_before(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    """No Transforms: xmlsec digests inclusive C14N (the recommendation's default); the gateway, with
    signxml as configured before, exclusive C14N. So such a signature is refused, as it was."""
    data = resigned_by_xmlsec(sdk(kit.rsa), kit.rsa, no_transforms)
    assert verdicts(kit, data, monkeypatch) == ("SIGNATURE_INVALID", "SIGNATURE_INVALID")


def test_the_verdicts_can_differ(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cross-check sees a verifier that accepts what it should not (here: one that checks nothing)."""
    root = parse(sdk(kit.rsa))
    changed("soapenv:Body/reg:DestinationRegistration/reg:DestinationCode", "11")(root)
    with monkeypatch.context() as patched:
        patched.setattr(verify_module, "verify_signature", lambda header, certificate: None)
        assert verdict(kit, serialise(root)) == ACCEPTED
    assert verdict(kit, serialise(root)) == "SIGNATURE_INVALID"


def test_every_reference_of_signedinfo_is_checked(kit: Kit) -> None:
    """A header whose resolved references miss one of SignedInfo's is refused, not verified in part."""
    root = parse(sdk(kit.rsa))
    header = read_security_header(root, split_envelope(root))
    verify_signature(header, kit.rsa.certificate)
    with pytest.raises(SignatureInvalid, match="3 references; 2 were resolved"):
        verify_signature(dataclasses.replace(header, references=header.references[1:]), kit.rsa.certificate)
