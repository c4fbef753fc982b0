"""The gateway's own XML signatures (receipts, and forwarded messages with issue 5).

Enveloped XMLDSig signatures with exclusive C14N and SHA-256, ECDSA or RSA by the gateway's key,
the gateway certificate in ``KeyInfo/X509Data``, so that ``xmlsec1 --verify`` with the CA
certificate checks them (``--id-attr:Id`` naming the signed element).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureConstructionMethod, SignatureMethod
from signxml.signer import XMLSigner

from gateway.pki.keystore import KeyStore
from gateway.security.policy import EXCLUSIVE_C14N


class GatewaySigner:
    """Signs elements that carry an ``Id`` attribute with the key store's key."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys
        method = (
            SignatureMethod.ECDSA_SHA256
            if isinstance(keys.signing_key(), ec.EllipticCurvePrivateKey)
            else (SignatureMethod.RSA_SHA256)
        )
        self._signer = XMLSigner(
            method=SignatureConstructionMethod.enveloped,
            signature_algorithm=method,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=EXCLUSIVE_C14N,
        )

    def sign_enveloped(self, element: etree._Element) -> etree._Element:
        """``element`` with a ds:Signature over it (by its ``Id``) appended as its last child.

        signxml works on a copy: the signed element it returns is what callers must use.
        """
        element_id = element.get("Id")
        if not element_id:
            raise ValueError("the element to sign needs an Id attribute")
        signed: etree._Element = self._signer.sign(
            element,
            key=self._keys.signing_key(),
            cert=[self._keys.certificate()],
            reference_uri=f"#{element_id}",
            id_attribute="Id",
        )
        return signed
