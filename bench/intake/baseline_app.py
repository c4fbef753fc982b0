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

``BENCH_BASELINE=xsd+dsig``: the same parse and validation, then **the gateway's own signature
check**: the intake's check stages that lead to it (``split``, ``IdentifyService``: the envelope's
parts and routing header, which the check reads) and the very ``VerifySignature`` the gateway runs
(``gateway.security.verify``: the WS-Security structure, the algorithm policy, the Timestamp's
freshness, the certificate's chain and CRLs, the XMLDSig schema, then ``dsig_verify``), built as
``gateway.web.app`` builds it: a ``TrustStore`` of the anchors and CRLs that ``Settings`` names
(the demo home's development CA and its CRL, from the same ``GATEWAY_*`` settings the gateway
gets) and the same Timestamp age and clock skew. The stages get no session (``NO_DATABASE``), as
in the gateway. What the gateway then checks in the database (the certificate registered to the
sender, replay) is replaced by one comparison in memory: the certificate that signed must be the
sender's demo certificate (``BENCH_CERTS_DIR``, as for ``xsd+sig``). Since the gateway stopped
using signxml, this is the baseline that checks what the gateway checks, at the gateway's cost.

Served by gunicorn with the gateway's worker class, workers and threads::

    BENCH_BASELINE=xsd gunicorn --pythonpath bench/intake -k gthread --threads 8 'baseline_app:create_app()'
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from flask import Flask, Response, request
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.clock import SystemClock
from gateway.errors import ConfigurationError, Fault
from gateway.intake.catalog import ServiceCatalog
from gateway.intake.pipeline import NO_DATABASE, IdentifyService, Inbound, split
from gateway.security.trust import TrustStore
from gateway.security.verify import VerifySignature
from gateway.settings import SCHEMAS_DIR, Settings
from gateway.xmlparse import parse_untrusted

CONTENT_TYPE = "text/xml; charset=utf-8"
VALID = b'<?xml version="1.0" encoding="UTF-8"?>\n<valid xmlns="urn:gradex:bench:1"/>'
INVALID = b'<?xml version="1.0" encoding="UTF-8"?>\n<invalid xmlns="urn:gradex:bench:1"/>'
MODES = ("xsd", "xsd+sig", "xsd+dsig")

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

Check = Callable[[bytes], bool]  # the request's body: valid (True) or refused (False, or a Fault)


def create_app() -> Flask:
    """The baseline application of ``BENCH_BASELINE``; schema, certificates and trust are loaded once."""
    mode = os.environ.get("BENCH_BASELINE", "xsd")
    if mode not in MODES:
        raise SystemExit(f"BENCH_BASELINE must be one of {', '.join(MODES)}, not {mode!r}")
    catalog = ServiceCatalog(SCHEMAS_DIR)
    schema = catalog.schema
    check = _validate(schema)
    if mode == "xsd+sig":
        check = _validate_and_verify(schema, _certificates(Path(os.environ["BENCH_CERTS_DIR"])))
    elif mode == "xsd+dsig":
        check = _validate_and_verify_as_gateway(
            schema, catalog, _gateway_verifier(Settings.from_env()), _certificates(Path(os.environ["BENCH_CERTS_DIR"]))
        )
    app = Flask(f"bench-baseline-{mode}")

    @app.post("/soap")
    def receive() -> Response:
        try:
            valid = check(request.get_data())
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


def _validate(schema: etree.XMLSchema) -> Check:
    def check(raw: bytes) -> bool:
        return bool(schema.validate(parse_untrusted(raw)))

    return check


def _validate_and_verify(schema: etree.XMLSchema, certificates: dict[str, x509.Certificate]) -> Check:
    def check(raw: bytes) -> bool:
        tree = parse_untrusted(raw)
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


def _gateway_verifier(settings: Settings) -> VerifySignature:
    """``VerifySignature`` as ``gateway.web.app.create_app`` builds it from ``settings``: the trust
    anchors and CRLs it names, its Timestamp age and clock skew. Like the gateway, refuses to start
    when revocation cannot be checked (every message would be refused)."""
    trust = TrustStore(settings.anchors, settings.crls)
    if problems := trust.revocation_problems(SystemClock().now()):
        raise ConfigurationError(f"xsd+dsig baseline: revocation cannot be checked: {'; '.join(problems)}")
    return VerifySignature(
        trust,
        max_age=timedelta(seconds=settings.timestamp_max_age_seconds),
        skew=timedelta(seconds=settings.clock_skew_seconds),
    )


def _validate_and_verify_as_gateway(
    schema: etree.XMLSchema,
    catalog: ServiceCatalog,
    verify: VerifySignature,
    certificates: dict[str, x509.Certificate],
) -> Check:
    """Parse and validate as the other modes do, then the gateway's own check stages up to and
    including the signature; a refusal is the stage's :class:`Fault`."""
    identify = IdentifyService(catalog)
    clock = SystemClock()
    registered = {sender: cert.fingerprint(hashes.SHA256()).hex() for sender, cert in certificates.items()}

    def check(raw: bytes) -> bool:
        tree = parse_untrusted(raw)
        if not schema.validate(tree):
            return False
        inbound = Inbound(raw=raw, received_at=clock.now(), tree=tree)
        for stage in (split, identify, verify):
            stage(inbound, NO_DATABASE)
        assert inbound.routing is not None and inbound.security is not None
        # instead of the gateway's database look-up: the certificate is the sender's
        return registered.get(inbound.routing.sender) == inbound.security.certificate_sha256

    return check
