"""``POST /soap`` (intake), ``GET /soap?wsdl`` and ``GET /schemas/<file>`` (the published contract)."""

from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache

from flask import Blueprint, Response, abort, render_template, request
from lxml import etree
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.errors import DatabaseUnavailable, Fault, InternalError, PayloadTooLarge, UnsupportedMediaType
from gateway.intake.catalog import WSDL_NS, XSD_NS, ServiceCatalog
from gateway.intake.soap import envelope, fault_element
from gateway.monitoring.views import note_intake
from gateway.store.db import transaction
from gateway.web.context import gateway
from gateway.xmlparse import hardened_parser, schema_parser

log = logging.getLogger(__name__)
blueprint = Blueprint("intake", __name__)
SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"


@blueprint.post("/soap")
def receive() -> Response:
    context = gateway()
    try:
        raw = _read_limited(context.settings.max_message_bytes)
        try:
            accepted = context.pipeline.process(raw, context.clock.now(), client=request.remote_addr)
        except DBAPIError as exc:
            if not _database_unavailable(exc):
                raise
            # Not reachable, not writable (read-only, disk full), or no connection free in time: the
            # message was not accepted, and the sender should send it again unchanged.
            log.warning("the database failed during intake: %s", str(exc).splitlines()[0])
            raise DatabaseUnavailable() from None
        except PoolTimeout:
            log.warning("no database connection became free in time during intake")
            raise DatabaseUnavailable() from None
    except DatabaseUnavailable as fault:
        log.info("refused %s: %s", fault.code, fault.message)
        note_intake(fault=fault)
        _audit_refusal(fault, context.clock.now())  # likely fails too; logged if so
        response = _answer(fault_element(fault), fault.http_status)
        response.headers["Retry-After"] = str(fault.retry_after_seconds)
        return response
    except Fault as fault:
        log.info("refused %s: %s (message %s)", fault.code, fault.message, fault.message_id)
        note_intake(fault=fault)
        _audit_refusal(fault, context.clock.now())
        return _answer(fault_element(fault), fault.http_status)
    except Exception:
        log.exception("intake failed")
        failure = InternalError()
        note_intake(fault=failure)
        _audit_refusal(failure, context.clock.now())  # recorded as a refusal, like every other
        return _answer(fault_element(failure), failure.http_status)
    if accepted.resent:
        log.info(
            "resent %s %s from %s: answered with its receipt",
            accepted.service.name,
            accepted.message_id,
            accepted.sender_id,
        )
    else:
        log.info("accepted %s %s from %s", accepted.service.name, accepted.message_id, accepted.sender_id)
    note_intake(accepted=accepted)
    push = list(accepted.push_delivery_ids)  # all to the message's recipient
    context.delivery.enqueue(push, dict.fromkeys(push, accepted.recipient_id))
    return _answer(accepted.answer, 200, canonical=accepted.canonical)  # the receipt, or another answer


def _answer(body_child: etree._Element | bytes, status: int, canonical: bool = False) -> Response:
    """The SOAP response with ``body_child``, signed by the gateway (gateway.security.response).

    Bytes are an answer already serialised (a receipt: ``Accepted.answer``), spliced in as they are;
    ``canonical``: in exclusive canonical form.
    """
    context = gateway()
    try:
        if context.responses is not None:
            now = context.clock.now()
            if isinstance(body_child, bytes):
                return _soap(context.responses.envelope(body_child, now, canonical=canonical), status)
            body = etree.tostring(body_child, encoding="UTF-8", xml_declaration=False)
            return _soap(context.responses.envelope(body, now), status)
    except Exception:  # the answer goes out all the same, unsigned; the operator sees why
        log.exception("could not sign the SOAP response")
    element = etree.fromstring(body_child, parser=hardened_parser()) if isinstance(body_child, bytes) else body_child
    return _soap(envelope(element), status)


READ_ONLY_TRANSACTION = "25006"  # PostgreSQL: a read-only server (a standby, default_transaction_read_only)


def _database_unavailable(exc: DBAPIError) -> bool:
    """The database failed as a whole (gone, read-only, full), not this message's statement."""
    if isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated:
        return True
    return getattr(exc.orig, "sqlstate", None) == READ_ONLY_TRANSACTION


def _audit_refusal(fault: Fault, now: datetime) -> None:
    """Record a refusal in the audit log (its own transaction: the refused message stored nothing).

    A fault that carries evidence of its own (``Fault.on_refusal``: a refused use of a graduate's
    authorisation) has it written in the same transaction.
    """
    event = AuditEvent(
        kind="message.refused",
        at=now,
        message_id=fault.message_id,
        facts={
            "code": fault.code,
            "message_id": fault.message_id,
            "claimed_sender": fault.sender,
            "service": fault.service,
        },
    )
    try:
        with transaction(gateway().sessions) as session:
            record(session, event)
            if fault.on_refusal is not None:
                fault.on_refusal(session)
    except Exception:  # the refusal is answered all the same; the operator sees the failure
        log.exception("could not record the refusal of %s in the audit log", fault.message_id)


def _read_limited(limit: int) -> bytes:
    """The request body, refusing it before parsing when it is larger than ``limit`` bytes."""
    mimetype = request.mimetype
    if mimetype not in ("text/xml", "application/xml", "application/soap+xml"):
        raise UnsupportedMediaType(f"Content-Type {mimetype or 'none'} is not text/xml")
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the message has {declared} bytes; the limit is {limit}")
    if declared is not None:
        return request.stream.read(declared)  # what gateway serve hands over: the body read whole
    # No Content-Length (a chunked body from a server that streams it): read in pieces, one byte
    # past the limit at most, never a buffer of the limit's size for every request.
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        part = request.stream.read(min(65536, limit + 1 - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    if size > limit:
        raise PayloadTooLarge(f"the message has more than {limit} bytes; the limit is {limit}")
    return b"".join(parts)


def _soap(body: bytes, status: int) -> Response:
    return Response(body, status=status, content_type=SOAP_CONTENT_TYPE)


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
    return Response(_published_wsdl(context.catalog, base), content_type="text/xml; charset=utf-8")


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
