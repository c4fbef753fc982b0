"""The SDK's check of the gateway's enveloped signatures (``gateway.sdk.receipts.verify_gateway_signed``).

It verifies with python-xmlsec after checking the signature's shape itself; these are the shapes
and documents it must refuse: what signature wrapping, a second reference, a foreign transform or
algorithm, a borrowed Id or a certificate not the gateway's would otherwise slip past a library that
verifies whatever the signature points at. Each case is also checked to verify before its change, so
that a test fails if the change stops being the only reason for the refusal.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree
from lxml.builder import ElementMaker
from signxml.verifier import XMLVerifier

from gateway.bootstrap import gateway_key_paths
from gateway.intake.catalog import GATEWAY_NS
from gateway.pki.keystore import PemKeyStore, PrivateKey
from gateway.sdk.receipts import ReceiptInvalid, verify_gateway_signed
from gateway.security.policy import EXCLUSIVE_C14N
from gateway.security.signer import GatewaySigner, signature_value
from gateway.security.wsse import DS_NS
from gateway.settings import Settings
from tests.conftest import UNIVERSITY, credentials
from tests.security.test_receipt import SIGNXML_CONFIG, signing_certificate

GW = ElementMaker(namespace=GATEWAY_NS, nsmap={"gw": GATEWAY_NS})
NS = {"gw": GATEWAY_NS, "ds": DS_NS}
DELIVERY = f"{{{GATEWAY_NS}}}Delivery"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"


class _Keys:
    def __init__(self, key: PrivateKey, certificate: x509.Certificate) -> None:
        self._key, self._certificate = key, certificate

    def signing_key(self) -> PrivateKey:
        return self._key

    def certificate(self) -> x509.Certificate:
        return self._certificate


@pytest.fixture
def gateway(settings: Settings) -> GatewaySigner:
    key, cert = gateway_key_paths(settings.keys_dir)
    return GatewaySigner(PemKeyStore(key, cert, settings.key_passphrase))


@pytest.fixture
def anchors(settings: Settings) -> tuple[Path, ...]:
    return (settings.keys_dir / "ca" / "ca.cert.pem",)


def delivery(message_id: str = "0a8f6c52-1c1e-4d4e-9f2a-5d0e6b7c8d9e", sender: str = UNIVERSITY) -> etree._Element:
    element: etree._Element = GW.Delivery(
        GW.MessageId(message_id), GW.Sender(sender), GW.Original(GW.Note("the original")), Id=f"delivery-{message_id}"
    )
    return element


def in_body(element: etree._Element) -> etree._Element:
    """``element`` as a recipient finds it: inside a SOAP Body, parsed from the wire."""
    soap = "http://schemas.xmlsoap.org/soap/envelope/"
    root = etree.fromstring(
        f'<s:Envelope xmlns:s="{soap}"><s:Body>'.encode() + etree.tostring(element) + b"</s:Body></s:Envelope>"
    )
    return root[0][0]


def resign(signed: etree._Element, key: PrivateKey) -> None:
    """Sign ``signed``'s SignedInfo again, as it now stands, with ``key`` (a forger with a key of
    their own, or a change to SignedInfo that must then fail on its shape, not on its value)."""
    signed_info = signed.find("ds:Signature/ds:SignedInfo", NS)
    assert signed_info is not None
    canonical = etree.tostring(signed_info, method="c14n", exclusive=True)
    value = signed.find("ds:Signature/ds:SignatureValue", NS)
    assert value is not None
    value.text = signature_value(key, canonical)


def gateway_key(settings: Settings) -> PrivateKey:
    key, cert = gateway_key_paths(settings.keys_dir)
    return PemKeyStore(key, cert, settings.key_passphrase).signing_key()


def test_a_delivery_in_a_soap_body_verifies_and_is_returned(gateway: GatewaySigner, anchors: tuple[Path, ...]) -> None:
    element = in_body(gateway.sign_enveloped(delivery()))
    assert verify_gateway_signed(element, DELIVERY, anchors) is element
    assert verify_gateway_signed(element, DELIVERY, anchors) is element  # again, on the same tree


def test_what_the_sdk_accepts_signxml_accepts(
    gateway: GatewaySigner, anchors: tuple[Path, ...], settings: Settings
) -> None:
    element = in_body(gateway.sign_enveloped(delivery()))
    verify_gateway_signed(element, DELIVERY, anchors)
    XMLVerifier().verify(
        copy.deepcopy(element), x509_cert=signing_certificate(settings), id_attribute="Id", expect_config=SIGNXML_CONFIG
    )


def _alter_fact(element: etree._Element) -> None:
    sender = element.find("gw:Sender", NS)
    assert sender is not None
    sender.text = "91110000100000000X"


def _wrap_a_signed_copy(element: etree._Element) -> None:
    """The classic wrapping attack: the signed original moved out of sight under the forged element,
    which keeps the original's Id and signature but says something else."""
    hidden = copy.deepcopy(element)
    hidden.set("Id", "moved")
    _alter_fact(element)
    element.find("gw:Original", NS).append(hidden)  # type: ignore[union-attr]


def _remove_signature(element: etree._Element) -> None:
    signature = element.find("ds:Signature", NS)
    assert signature is not None
    element.remove(signature)


def _signature_one_level_down(element: etree._Element) -> None:
    signature = element.find("ds:Signature", NS)
    assert signature is not None
    element.find("gw:Original", NS).append(signature)  # type: ignore[union-attr]


def _second_signature(element: etree._Element) -> None:
    signature = element.find("ds:Signature", NS)
    assert signature is not None
    element.append(copy.deepcopy(signature))


def _borrowed_xml_id(element: etree._Element) -> None:
    """Another element of the document claims the signed element's Id as an ID (``xml:id``)."""
    original = element.find("gw:Original", NS)
    assert original is not None
    original.set("{http://www.w3.org/XML/1998/namespace}id", str(element.get("Id")))


def _no_id(element: etree._Element) -> None:
    del element.attrib["Id"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_alter_fact, "does not verify"),
        (_wrap_a_signed_copy, "does not verify"),
        (_remove_signature, "no gateway signature"),
        (_signature_one_level_down, "no gateway signature"),
        (_second_signature, "more than one"),
        (_no_id, "with an Id"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else "",
)
def test_a_changed_document_is_refused(
    gateway: GatewaySigner, anchors: tuple[Path, ...], change: Callable[[etree._Element], None], reason: str
) -> None:
    element = in_body(gateway.sign_enveloped(delivery()))
    verify_gateway_signed(copy.deepcopy(element), DELIVERY, anchors)
    change(element)
    with pytest.raises(ReceiptInvalid, match=reason):
        verify_gateway_signed(element, DELIVERY, anchors)


def test_an_id_another_element_holds_as_its_xml_id_is_refused(
    gateway: GatewaySigner, anchors: tuple[Path, ...]
) -> None:
    element = gateway.sign_enveloped(delivery())
    _borrowed_xml_id(element)
    # Parsed, libxml2 registers the xml:id: the reference could resolve to either element.
    parsed = in_body(element)
    with pytest.raises(ReceiptInvalid, match="used twice"):
        verify_gateway_signed(parsed, DELIVERY, anchors)


def _reference_to(uri: str) -> Callable[[etree._Element], None]:
    def change(signed_info: etree._Element) -> None:
        signed_info.find("ds:Reference", NS).set("URI", uri)  # type: ignore[union-attr]

    change.__name__ = f"reference_to_{uri.strip('#') or 'the_document'}"
    return change


def _second_reference(signed_info: etree._Element) -> None:
    reference = signed_info.find("ds:Reference", NS)
    assert reference is not None
    signed_info.append(copy.deepcopy(reference))


def _transforms(*algorithms: str) -> Callable[[etree._Element], None]:
    def change(signed_info: etree._Element) -> None:
        transforms = signed_info.find("ds:Reference/ds:Transforms", NS)
        assert transforms is not None
        for transform in list(transforms):
            transforms.remove(transform)
        for algorithm in algorithms:
            etree.SubElement(transforms, f"{{{DS_NS}}}Transform", Algorithm=algorithm)

    change.__name__ = "transforms_" + "_".join(
        algorithm.rsplit("#", 1)[-1].rsplit("/", 1)[-1] for algorithm in algorithms
    )
    return change


def _sha1_digest(signed_info: etree._Element) -> None:
    signed_info.find("ds:Reference/ds:DigestMethod", NS).set("Algorithm", SHA1)  # type: ignore[union-attr]


ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_reference_to("#moved"), "does not cover the whole element"),
        (_reference_to(""), "does not cover the whole element"),
        (_second_reference, "one reference"),
        (_transforms(EXCLUSIVE_C14N.value), "enveloped"),
        (_transforms(ENVELOPED), "enveloped, then exclusive C14N"),
        (_transforms(ENVELOPED, XPATH), "algorithm"),
        (_transforms(ENVELOPED, EXCLUSIVE_C14N.value, EXCLUSIVE_C14N.value), "enveloped, then exclusive C14N"),
        (_sha1_digest, "algorithm"),
    ],
    ids=lambda value: value.__name__ if callable(value) else "",
)
def test_a_signature_of_another_shape_is_refused_even_when_its_value_matches(
    gateway: GatewaySigner,
    anchors: tuple[Path, ...],
    settings: Settings,
    change: Callable[[etree._Element], None],
    reason: str,
) -> None:
    element = gateway.sign_enveloped(delivery())
    signed_info = element.find("ds:Signature/ds:SignedInfo", NS)
    assert signed_info is not None
    change(signed_info)
    resign(element, gateway_key(settings))  # the value fits the changed SignedInfo: the shape must refuse it
    with pytest.raises(ReceiptInvalid, match=reason):
        verify_gateway_signed(in_body(element), DELIVERY, anchors)


def test_a_participants_signature_is_not_the_gateways(settings: Settings, anchors: tuple[Path, ...]) -> None:
    university = credentials(settings.keys_dir, UNIVERSITY)
    signed = GatewaySigner(_Keys(university.key, university.certificate)).sign_enveloped(delivery())
    with pytest.raises(ReceiptInvalid, match="not signed with a gateway certificate"):
        verify_gateway_signed(in_body(signed), DELIVERY, anchors)


def test_a_gateway_certificate_swapped_in_beside_a_forged_value_does_not_verify(
    settings: Settings, gateway: GatewaySigner, anchors: tuple[Path, ...]
) -> None:
    """A forger signs with their own key but names the gateway's certificate in KeyInfo: the key
    that checks the value is the named certificate's, never one the signature brings along."""
    university = credentials(settings.keys_dir, UNIVERSITY)
    element = gateway.sign_enveloped(delivery())
    _alter_fact(element)
    digest = hashlib.sha256(etree.tostring(_without_signature(element), method="c14n", exclusive=True)).digest()
    element.find("ds:Signature/ds:SignedInfo/ds:Reference/ds:DigestValue", NS).text = (  # type: ignore[union-attr]
        base64.b64encode(digest).decode()
    )
    resign(element, university.key)
    with pytest.raises(ReceiptInvalid, match="does not verify"):
        verify_gateway_signed(in_body(element), DELIVERY, anchors)


def _without_signature(element: etree._Element) -> etree._Element:
    bare = copy.deepcopy(element)
    _remove_signature(bare)
    return bare


def test_a_delivery_signed_by_the_gateway_of_another_ca_is_not_trusted(gateway: GatewaySigner, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from gateway.pki.devca import DevelopmentCA

    other = DevelopmentCA.ensure(tmp_path, datetime.now(UTC))
    with pytest.raises(ReceiptInvalid, match="not trusted"):
        verify_gateway_signed(in_body(gateway.sign_enveloped(delivery())), DELIVERY, (other.cert_path,))


def test_a_comment_that_would_cut_a_signed_value_short_is_refused(
    gateway: GatewaySigner, anchors: tuple[Path, ...]
) -> None:
    """Exclusive C14N leaves comments out of what is signed, so a comment slipped into a value keeps
    the signature good while a reader of the element's text sees only what comes before it (the
    SAML comment truncation). The SDK refuses any comment or processing instruction in the element."""
    element = gateway.sign_enveloped(delivery())
    sender = element.find("gw:Sender", NS)
    assert sender is not None and sender.text == UNIVERSITY
    sender.text = UNIVERSITY[:6]
    comment = etree.Comment(" ")
    comment.tail = UNIVERSITY[6:]
    sender.append(comment)
    signed = etree.tostring(sender, method="c14n", exclusive=True, with_comments=False)
    assert UNIVERSITY in signed.decode()  # what is signed is unchanged
    assert sender.text == UNIVERSITY[:6]  # what a reader would take for the sender
    wrapped = in_body(element)
    with pytest.raises(ReceiptInvalid, match="comment or a processing instruction"):
        verify_gateway_signed(wrapped, DELIVERY, anchors)
    wrapped.find("gw:Sender", NS).remove(wrapped.find("gw:Sender", NS)[0])  # type: ignore[union-attr,arg-type]
    with pytest.raises(ReceiptInvalid, match="does not verify"):  # without it, the text is the cut one
        verify_gateway_signed(wrapped, DELIVERY, anchors)


def test_a_processing_instruction_in_the_element_is_refused(gateway: GatewaySigner, anchors: tuple[Path, ...]) -> None:
    element = gateway.sign_enveloped(delivery())
    element.find("gw:Original", NS).append(etree.ProcessingInstruction("x", "y"))  # type: ignore[union-attr]
    with pytest.raises(ReceiptInvalid, match="comment or a processing instruction"):
        verify_gateway_signed(in_body(element), DELIVERY, anchors)
