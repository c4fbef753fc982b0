"""The baselines of bench/intake: Flask endpoints that do only what any endpoint must do.

``BENCH_BASELINE=xsd`` (the default): the project's hardened parse
(``gateway.xmlparse.parse_untrusted``) and one validation against the very schema set the gateway
uses, then a small XML answer.

``BENCH_BASELINE=xsd+sig``: the same, then a plain signxml verification of the envelope's
WS-Security signature against the sender's certificate: the sender is read from the routing
header (``gw:Sender``) and its certificate from ``BENCH_CERTS_DIR/<sender>/cert.pem`` (the demo
participants' certificates that ``gateway init --demo`` wrote), loaded once as
``x509.Certificate`` objects. signxml checks the three references (Body, Timestamp, routing
header), SHA-256 digests, RSA/ECDSA-SHA256, exclusive C14N and its own XMLDSig schema check. It
does no chain, revocation, timestamp-freshness, replay or registration check: those belong to what
the gateway/baseline ratio measures.

Served by gunicorn with the gateway's worker class, workers and threads::

    BENCH_BASELINE=xsd gunicorn --pythonpath bench/intake -k gthread --threads 8 'baseline_app:create_app()'
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from flask import Flask, Response, request
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.errors import Fault
from gateway.intake.catalog import ServiceCatalog
from gateway.settings import SCHEMAS_DIR
from gateway.xmlparse import parse_untrusted

CONTENT_TYPE = "text/xml; charset=utf-8"
VALID = b'<?xml version="1.0" encoding="UTF-8"?>\n<valid xmlns="urn:gradex:bench:1"/>'
INVALID = b'<?xml version="1.0" encoding="UTF-8"?>\n<invalid xmlns="urn:gradex:bench:1"/>'
MODES = ("xsd", "xsd+sig")

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
GW_NS = "urn:gradex:gateway:1"
SENDER = f"./{{{SOAP_NS}}}Header/{{{GW_NS}}}Routing/{{{GW_NS}}}Sender"
SIGNATURE_CONFIG = SignatureConfiguration(
    location=f"./{{{SOAP_NS}}}Header/{{{WSSE_NS}}}Security/",
    expect_references=3,
    signature_methods=frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
    default_reference_c14n_method=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
)

Check = Callable[[etree._ElementTree], bool]


def create_app() -> Flask:
    """The baseline application of ``BENCH_BASELINE``; schema and certificates are loaded once."""
    mode = os.environ.get("BENCH_BASELINE", "xsd")
    if mode not in MODES:
        raise SystemExit(f"BENCH_BASELINE must be one of {', '.join(MODES)}, not {mode!r}")
    schema = ServiceCatalog(SCHEMAS_DIR).schema
    check: Check = schema.validate
    if mode == "xsd+sig":
        certificates = _certificates(Path(os.environ["BENCH_CERTS_DIR"]))
        check = _validate_and_verify(schema, certificates)
    app = Flask(f"bench-baseline-{mode}")

    @app.post("/soap")
    def receive() -> Response:
        try:
            valid = check(parse_untrusted(request.get_data()))
        except Fault:
            valid = False
        return Response(VALID if valid else INVALID, status=200 if valid else 400, content_type=CONTENT_TYPE)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b"ok", content_type="text/plain")

    return app


def _certificates(folder: Path) -> dict[str, x509.Certificate]:
    """Each participant's certificate by participant id (``<folder>/<id>/cert.pem``)."""
    return {
        path.parent.name: x509.load_pem_x509_certificate(path.read_bytes())
        for path in sorted(folder.glob("*/cert.pem"))
    }


def _validate_and_verify(schema: etree.XMLSchema, certificates: dict[str, x509.Certificate]) -> Check:
    def check(tree: etree._ElementTree) -> bool:
        if not schema.validate(tree):
            return False
        root = tree.getroot()
        certificate = certificates.get(root.findtext(SENDER) or "")
        if certificate is None:
            return False
        try:
            XMLVerifier().verify(root, x509_cert=certificate, id_attribute="Id", expect_config=SIGNATURE_CONFIG)
        except (SignXMLException, etree.LxmlError):
            return False
        return True

    return check
