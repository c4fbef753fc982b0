"""CPU cost of signing the gateway's SOAP responses (gateway.security.response), beside baselines.

Per response, in CPU microseconds (median of 5 runs of N responses each), for an answer the size
of a receipt and one of about 4 KB:

- ``unsigned``: the envelope as the intake built it before responses were signed (the baseline);
- ``signed``: ``ResponseSigner.envelope`` (what the intake does now);
- ``xmlsec``: the same signature made with python-xmlsec (parse, template, ``SignatureContext.sign``),
  the path zeep uses, for comparison;
- ``raw sign``: the key's bare signature over 600 bytes (cryptography), the floor.

    .venv/bin/python bench/responses/run.py            # EC P-256 and RSA-2048 gateway keys
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway.intake.soap import envelope
from gateway.pki.keystore import PrivateKey
from gateway.security.response import ResponseSigner
from gateway.security.wsse import WSSE_NS, WSU_NS

ROOT = Path(__file__).resolve().parents[2]
N = 2000


class Keys:
    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench gateway")])
        now = datetime.now(UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256())
        )

    def signing_key(self) -> PrivateKey:
        return self._key

    def certificate(self) -> x509.Certificate:
        return self._cert


def xmlsec_signer(keys: Keys) -> Callable[[etree._Element], bytes]:
    pem = keys.signing_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM, None)
    method = (
        xmlsec.Transform.ECDSA_SHA256
        if isinstance(keys.signing_key(), ec.EllipticCurvePrivateKey)
        else xmlsec.Transform.RSA_SHA256
    )

    def sign(child: etree._Element) -> bytes:
        root = etree.fromstring(envelope(child))
        header, body = root[0], root[1]
        security = etree.SubElement(header, f"{{{WSSE_NS}}}Security")
        timestamp = etree.SubElement(security, f"{{{WSU_NS}}}Timestamp", {f"{{{WSU_NS}}}Id": "TS-1"})
        etree.SubElement(timestamp, f"{{{WSU_NS}}}Created").text = "2026-01-01T00:00:00.000Z"
        body.set(f"{{{WSU_NS}}}Id", "Body-1")
        signature = xmlsec.template.create(root, xmlsec.Transform.EXCL_C14N, method, ns="ds")
        security.append(signature)
        for uri in ("#Body-1", "#TS-1"):
            reference = xmlsec.template.add_reference(signature, xmlsec.Transform.SHA256, uri=uri)
            xmlsec.template.add_transform(reference, xmlsec.Transform.EXCL_C14N)
        context = xmlsec.SignatureContext()
        context.register_id(body, "Id", WSU_NS)
        context.register_id(timestamp, "Id", WSU_NS)
        context.key = key
        context.sign(signature)
        return bytes(etree.tostring(root))

    return sign


def per_call(work: Callable[[], object]) -> float:
    runs = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(N):
            work()
        runs.append((time.process_time() - start) / N * 1e6)
    return statistics.median(runs)


def row(label: str, key: PrivateKey, name: str, child: etree._Element) -> str:
    keys = Keys(key)
    signer, with_xmlsec = ResponseSigner(keys), xmlsec_signer(keys)
    data, now = b"x" * 600, datetime.now(UTC)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        raw = per_call(lambda: key.sign(data, ec.ECDSA(hashes.SHA256())))
    else:
        raw = per_call(lambda: key.sign(data, padding.PKCS1v15(), hashes.SHA256()))
    unsigned = per_call(lambda: envelope(child))
    signed = per_call(lambda: signer.envelope(etree.tostring(child), now))
    other = per_call(lambda: with_xmlsec(child))
    size = len(etree.tostring(child))
    return f"{label:<10}{name:<10}{unsigned:>10.1f}{signed:>10.1f}{other:>10.1f}{raw:>10.1f}   ({size} B)"


def main() -> None:
    receipt = etree.fromstring(
        b'<gw:Receipt xmlns:gw="urn:gradex:gateway:1" Id="receipt-1">' + b"<gw:Part>x</gw:Part>" * 20 + b"</gw:Receipt>"
    )
    large = etree.fromstring((ROOT / "examples" / "destination-registration.xml").read_bytes())
    large.append(etree.Comment("x" * max(0, 4096 - len(etree.tostring(large)))))
    print(f"{'key':<10}{'answer':<10}{'unsigned':>10}{'signed':>10}{'xmlsec':>10}{'raw sign':>10}   (CPU µs/response)")
    keys: tuple[tuple[str, PrivateKey], ...] = (
        ("EC P-256", ec.generate_private_key(ec.SECP256R1())),
        ("RSA-2048", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    )
    for label, key in keys:
        for name, child in (("receipt", receipt), ("4 KB", large)):
            print(row(label, key, name, child))


if __name__ == "__main__":
    main()
