"""``GET /soap?wsdl`` and ``GET /schemas/<file>``: the published contract.

``POST /soap``, the intake itself, is not a view of the Flask app: ``gateway.intake.endpoint``
answers it in front of the app.
"""

from __future__ import annotations

from functools import lru_cache

from flask import Blueprint, Response, abort, render_template, request
from lxml import etree

from gateway.intake.catalog import WSDL_NS, XSD_NS, ServiceCatalog
from gateway.intake.endpoint import SOAP_CONTENT_TYPE
from gateway.web.context import gateway
from gateway.xmlparse import schema_parser

blueprint = Blueprint("intake", __name__)


@blueprint.get("/soap")
def wsdl() -> Response:
    if "wsdl" not in request.args and "WSDL" not in request.args:
        # A person who opens the endpoint in a browser: what it is, and where the WSDL is (405: it takes POSTs).
        page = render_template("soap.html", endpoint=f"{gateway().settings.published_url}/soap")
        return Response(page, status=405, mimetype="text/html", headers={"Allow": "POST"})
    # The addresses come from configuration (GATEWAY_PUBLIC_URL), never from the request's Host header,
    # which any client can set: a WSDL naming an attacker's host would send the next reader there.
    context = gateway()
    base = context.settings.published_url + "/"
    return Response(_published_wsdl(context.catalog, base), content_type=SOAP_CONTENT_TYPE)


@blueprint.get("/schemas/<name>")
def schema(name: str) -> Response:
    catalog = gateway().catalog
    # The XSDs, and the WSDL a push recipient implements (the gateway's own is at /soap?wsdl).
    published = {path.name for path in catalog.schemas_dir.glob("*.xsd")} | {"recipient-1.wsdl"}
    if name not in published:
        abort(404)
    return Response((catalog.schemas_dir / name).read_bytes(), content_type="text/xml; charset=utf-8")


@lru_cache(maxsize=4)  # one published address per settings
def _published_wsdl(catalog: ServiceCatalog, base_url: str) -> bytes:
    """The WSDL with absolute schema locations and the endpoint at ``base_url``."""
    tree = etree.parse(str(catalog.wsdl_path), parser=schema_parser(catalog.schemas_dir))
    for node in tree.iter(f"{{{XSD_NS}}}import"):
        location = node.get("schemaLocation")
        if location and "/" not in location:
            node.set("schemaLocation", f"{base_url}schemas/{location}")
    for address in tree.getroot().iterfind(f"{{{WSDL_NS}}}service/{{{WSDL_NS}}}port/*"):
        if address.get("location"):
            address.set("location", f"{base_url}soap")
    return bytes(etree.tostring(tree, xml_declaration=True, encoding="UTF-8"))
