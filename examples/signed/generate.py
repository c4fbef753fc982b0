"""Regenerate the files in examples/signed/: ``.venv/bin/python examples/signed/generate.py``.

- ``destination-registration.template.xml``: the xmlsec1 signature template, built by the same
  function as ``tests/interop/test_xmlsec1.py`` uses, with fixed example values;
- ``destination-registration.signed.xml``: the example document in an envelope signed by the SDK
  (``gateway.sdk.signing``) with the demo university's key of a throwaway gateway home (``gateway
  init --demo`` under /tmp), checked by that home's gateway, which must accept it;
- ``example-ca.cert.pem``: that throwaway development CA's certificate (public).

The throwaway home, with every private key in it, is deleted at the end: no key lands in the repository.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from lxml import etree

from gateway.bootstrap import initialise
from gateway.clock import SystemClock
from gateway.intake.envelope import HEADER
from gateway.pki.keystore import load_private_key
from gateway.sdk.envelope import wrap
from gateway.sdk.signing import sign_envelope_bytes
from gateway.security.wsse import DS_NS, SECURITY
from gateway.settings import PROJECT_ROOT, Settings
from gateway.web.app import create_app
from gateway.xmlparse import parse_untrusted

sys.path.insert(0, str(PROJECT_ROOT))
from tests.interop.test_xmlsec1 import signature_template

HERE = Path(__file__).resolve().parent
UNIVERSITY = "12110108400000008J"
EDUCATION_DEPARTMENT = "11110000000000001R"
DOCUMENT = PROJECT_ROOT / "examples" / "destination-registration.xml"

TEMPLATE_NOTE = """<!--
  A WS-Security signature TEMPLATE for xmlsec1 (see README.md in this folder for the command).
  Before signing, put a new UUID into gw:MessageId, the current UTC time into gw:CreatedAt and
  wsu:Created, and five minutes later into wsu:Expires: the gateway refuses a Timestamp older than
  5 minutes (plus 60 s clock skew) and a message id it has already accepted from you. xmlsec1 fills in the three
  DigestValues, the SignatureValue and the X509Certificate; the structure stays as it is here.
  The Id attributes are unqualified (Id, not wsu:Id); the gateway accepts both.
-->
"""

SIGNED_NOTE = """<!--
  EXAMPLE ONLY: a complete signed message as the gateway accepts it, signed on {date} by the
  SDK (gateway.sdk.signing) with the demo university key of a throwaway development home that
  has since been deleted. Its wsu:Timestamp is old, so a gateway answers TIMESTAMP_STALE, and its
  certificate (issued by example-ca.cert.pem) is registered on no gateway. Whitespace was added
  only between elements that are not signed; the signature still verifies (README.md).
-->
"""


def main() -> None:
    write_template()
    home = Path(tempfile.mkdtemp(prefix="gradex-example-"))
    try:
        write_signed_example(home)
    finally:
        shutil.rmtree(home)


def write_template() -> None:
    created = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    envelope = wrap(
        DOCUMENT.read_bytes(),
        sender=UNIVERSITY,
        service="DestinationRegistration",
        recipient=EDUCATION_DEPARTMENT,
        message_id="0b6f3c1e-2a7d-4a36-9d55-2f1c8e0b9a41",
        created_at=created,
    )
    root = parse_untrusted(signature_template(envelope, created=created)).getroot()
    etree.indent(root, space="  ")  # before signing, whitespace is free
    text = etree.tostring(root, encoding="unicode")
    (HERE / "destination-registration.template.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n' + TEMPLATE_NOTE + text + "\n", encoding="utf-8"
    )


def write_signed_example(home: Path) -> None:
    settings = Settings.from_env({}, base_dir=home)
    initialise(settings, SystemClock(), demo=True)
    folder = settings.keys_dir / "participants" / UNIVERSITY
    key = load_private_key(folder / "key.pem")
    certificate = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
    now = datetime.now(UTC).replace(microsecond=0)
    envelope = wrap(
        DOCUMENT.read_bytes(),
        sender=UNIVERSITY,
        service="DestinationRegistration",
        recipient=EDUCATION_DEPARTMENT,
        message_id="5f0c2b7e-8d4a-4e1f-9b36-7c2d1a0e4f58",
        created_at=now,
        correlation_id="REG-2025-000123",
    )
    unsigned = parse_untrusted(envelope).getroot()
    etree.indent(unsigned, space="  ")  # indent before signing: Body and routing header are signed as they are
    signed = sign_envelope_bytes(etree.tostring(unsigned), key, certificate, now=now, ttl=timedelta(minutes=5))
    root = parse_untrusted(signed).getroot()
    _indent_unsigned_parts(root)
    text = etree.tostring(root, encoding="unicode")
    data = '<?xml version="1.0" encoding="UTF-8"?>\n' + SIGNED_NOTE.format(date=now.date()) + text + "\n"

    app = create_app(settings)
    try:
        response = app.test_client().post("/soap", data=data.encode(), content_type="text/xml; charset=utf-8")
    finally:
        app.extensions["gateway"].engine.dispose()
    if response.status_code != 200:
        raise SystemExit(f"the throwaway gateway refused the example: {response.text}")
    (HERE / "destination-registration.signed.xml").write_text(data, encoding="utf-8")
    (HERE / "example-ca.cert.pem").write_bytes((settings.keys_dir / "ca" / "ca.cert.pem").read_bytes())


def _indent_unsigned_parts(root: etree._Element) -> None:
    """Line breaks between the children of wsse:Security and of ds:Signature, which are not signed.

    Text inside the Timestamp, SignedInfo, Body and routing header is signed and stays as it is;
    the tail of an element is not part of it.
    """
    header = root.find(HEADER)
    assert header is not None
    security = header.find(SECURITY)
    assert security is not None
    signature = security.find(f"{{{DS_NS}}}Signature")
    assert signature is not None
    security.tail = "\n    "
    for parent, depth in ((security, 3), (signature, 4)):
        parent.text = "\n" + "  " * depth
        children = list(parent)
        for child in children:
            child.tail = "\n" + "  " * depth
        children[-1].tail = "\n" + "  " * (depth - 1)


if __name__ == "__main__":
    main()
