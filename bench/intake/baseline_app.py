"""The baseline of bench/intake: a Flask endpoint that only parses and XSD-validates an envelope.

It does what every SOAP endpoint of the gateway's kind must do at the least: the project's
hardened parse (``gateway.xmlparse.parse_untrusted``) and a validation against the very schema
set the gateway uses, then a small XML answer. The gateway's figures divided by these show
what the rest of the intake pipeline (routing header, directory look-ups, storage, the
acceptance envelope) costs. Served by gunicorn with the gateway's worker and thread settings::

    gunicorn --pythonpath bench/intake -k gthread --threads 8 'baseline_app:create_app()'
"""

from __future__ import annotations

from flask import Flask, Response, request
from lxml import etree

from gateway.errors import Fault
from gateway.intake.catalog import ServiceCatalog
from gateway.settings import SCHEMAS_DIR
from gateway.xmlparse import parse_untrusted

CONTENT_TYPE = "text/xml; charset=utf-8"
VALID = b'<?xml version="1.0" encoding="UTF-8"?>\n<valid xmlns="urn:gradex:bench:1"/>'
INVALID = b'<?xml version="1.0" encoding="UTF-8"?>\n<invalid xmlns="urn:gradex:bench:1"/>'


def create_app() -> Flask:
    """The baseline application; the schema is loaded once, as the gateway's app factory does."""
    schema = ServiceCatalog(SCHEMAS_DIR).schema
    app = Flask("bench-baseline")

    @app.post("/soap")
    def receive() -> Response:
        return _answer(schema, request.get_data())

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b"ok", content_type="text/plain")

    return app


def _answer(schema: etree.XMLSchema, raw: bytes) -> Response:
    try:
        valid = schema.validate(parse_untrusted(raw))
    except Fault:
        valid = False
    return Response(VALID if valid else INVALID, status=200 if valid else 400, content_type=CONTENT_TYPE)
