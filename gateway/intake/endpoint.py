"""``POST /soap``: the intake's endpoint, a WSGI application of its own in front of the Flask app.

Every other request (the WSDL at ``GET /soap?wsdl``, the schemas, the portal, the auditor's pages,
the log's API, ``/metrics``) goes on to the Flask application. The intake is the gateway's busiest
path and uses none of what the Flask app gives the pages on every request: a session cookie opened
and saved, CSRF tokens, the rate limiter's look-ups (its senders are registered participants and
every message is signed and checked; a flood meets the serving layer's connection limits per
client, ``GATEWAY_MAX_CONNECTIONS_PER_CLIENT``), the language cookie, the routing of the request
through its hooks and proxies. Through Flask, answering a message cost about 0.3 ms of CPU more
than here, the pipeline's work aside: more than half of what the answer cost, and about a tenth of
a message's whole cost (bench/intake/README.md, twelfth pass).

What the app's hooks give every answer, this endpoint gives its own: the request's JSON line
(``gateway.monitoring.events.request``), the message counters, ``X-Content-Type-Options``
(``gateway.web.security.NO_SNIFF``). The client's address is the one ``TrustedProxies`` (which wraps
this endpoint too) reports. On the metrics port (``GATEWAY_METRICS_PORT``) the request goes on to
the app, which serves ``/metrics`` alone there and answers 404.

The request is read with werkzeug's ``Request`` (the body, its Content-Type and its length) and
answered with werkzeug's ``Response``, as Flask reads and answers it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from lxml import etree
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.wrappers import Request, Response

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.errors import DatabaseUnavailable, Fault, InternalError, PayloadTooLarge, UnsupportedMediaType
from gateway.intake.soap import envelope, fault_element
from gateway.monitoring import events
from gateway.monitoring.instruments import count_message
from gateway.store.db import transaction
from gateway.web.security import NO_SNIFF
from gateway.xmlparse import hardened_parser

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

    from gateway.intake.pipeline import Accepted
    from gateway.web.context import Gateway

log = logging.getLogger(__name__)
PATH = "/soap"
SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"
MEDIA_TYPES = frozenset({"text/xml", "application/xml", "application/soap+xml"})
READ_ONLY_TRANSACTION = "25006"  # PostgreSQL: a read-only server (a standby, default_transaction_read_only)


class SoapIntake:
    """WSGI middleware: ``POST /soap`` to the intake, every other request to ``app``.

    The gateway's context (``gateway.web.context.Gateway``) is the one ``flask_app`` holds when the
    request comes, as for the app's own views.
    """

    def __init__(self, app: WSGIApplication, flask_app: Flask) -> None:
        self.app = app
        self.flask_app = flask_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        context: Gateway = self.flask_app.extensions["gateway"]
        port = context.settings.metrics_port
        if port is not None and environ.get("SERVER_PORT") == str(port):
            return self.app(environ, start_response)  # the metrics port serves /metrics alone: the app says 404
        return _Answering(context).receive(Request(environ))(environ, start_response)


class _Answering:
    """The intake's answer to one request, in the gateway's ``context``."""

    def __init__(self, context: Gateway) -> None:
        self.context = context

    def receive(self, request: Request) -> Response:
        """The answer to one message: its receipt (or other answer), or a SOAP fault; never an exception."""
        started = time.perf_counter()
        try:
            facts, response = self._answer_message(request, started)
        except Exception:  # outside the message's own handling (its counters, say): a SOAP fault all the same
            log.exception("the intake could not answer")
            failure = InternalError()
            facts, response = _refused_facts(failure), self._answer(fault_element(failure), failure.http_status)
        events.request(
            method="POST",
            path=PATH,
            status=response.status_code,
            client=request.remote_addr,
            seconds=time.perf_counter() - started,
            **facts,
        )
        return response

    def _answer_message(self, request: Request, started: float) -> tuple[dict[str, str | None], Response]:
        context = self.context
        try:
            raw = _read_limited(request, context.settings.max_message_bytes)
            try:
                accepted = context.pipeline.process(raw, context.clock.now(), client=request.remote_addr)
            except DBAPIError as exc:
                if not _database_unavailable(exc):
                    raise
                # Not reachable, not writable (read-only, disk full), or no connection free in time:
                # the message was not accepted, and the sender should send it again unchanged.
                log.warning("the database failed during intake: %s", str(exc).splitlines()[0])
                raise DatabaseUnavailable() from None
            except PoolTimeout:
                log.warning("no database connection became free in time during intake")
                raise DatabaseUnavailable() from None
        except DatabaseUnavailable as fault:
            log.info("refused %s: %s", fault.code, fault.message)
            response = self._refuse(fault, started)
            response.headers["Retry-After"] = str(fault.retry_after_seconds)
            return _refused_facts(fault), response
        except Fault as fault:
            log.info("refused %s: %s (message %s)", fault.code, fault.message, fault.message_id)
            return _refused_facts(fault), self._refuse(fault, started)
        except Exception:
            log.exception("intake failed")
            failure = InternalError()
            return _refused_facts(failure), self._refuse(failure, started)  # recorded as a refusal, like every other
        if accepted.resent:
            log.info(
                "resent %s %s from %s: answered with its receipt",
                accepted.service.name,
                accepted.message_id,
                accepted.sender_id,
            )
        else:  # at DEBUG: the request's JSON line says the same (docs/operations.md, Logs)
            log.debug("accepted %s %s from %s", accepted.service.name, accepted.message_id, accepted.sender_id)
        count_message(accepted.service.name, None, time.perf_counter() - started, resent=accepted.resent)
        push = list(accepted.push_delivery_ids)  # all to the message's recipient
        context.delivery.enqueue(push, dict.fromkeys(push, accepted.recipient_id))
        answer = self._answer(accepted.answer, 200, canonical=accepted.canonical)  # the receipt, or another answer
        return _accepted_facts(accepted), answer

    def _refuse(self, fault: Fault, started: float) -> Response:
        count_message(fault.service, fault.code, time.perf_counter() - started)
        self._audit_refusal(fault, self.context.clock.now())  # for a database failure, likely fails too; logged
        return self._answer(fault_element(fault), fault.http_status)

    def _answer(self, body_child: etree._Element | bytes, status: int, canonical: bool = False) -> Response:
        """The SOAP response with ``body_child``, signed by the gateway (gateway.security.response).

        Bytes are an answer already serialised (a receipt: ``Accepted.answer``), spliced in as they are;
        ``canonical``: in exclusive canonical form.
        """
        context = self.context
        try:
            if context.responses is not None:
                now = context.clock.now()
                if isinstance(body_child, bytes):
                    return _soap(context.responses.envelope(body_child, now, canonical=canonical), status)
                body = etree.tostring(body_child, encoding="UTF-8", xml_declaration=False)
                return _soap(context.responses.envelope(body, now), status)
        except Exception:  # the answer goes out all the same, unsigned; the operator sees why
            log.exception("could not sign the SOAP response")
        element = (
            etree.fromstring(body_child, parser=hardened_parser()) if isinstance(body_child, bytes) else body_child
        )
        return _soap(envelope(element), status)

    def _audit_refusal(self, fault: Fault, now: datetime) -> None:
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
            with transaction(self.context.sessions) as session:
                record(session, event)
                if fault.on_refusal is not None:
                    fault.on_refusal(session)
        except Exception:  # the refusal is answered all the same; the operator sees the failure
            log.exception("could not record the refusal of %s in the audit log", fault.message_id)


def _accepted_facts(accepted: Accepted) -> dict[str, str | None]:
    """What the request's JSON line says of an accepted message (ids and names only)."""
    return {
        "message_id": accepted.message_id,
        "sender": accepted.sender_id,
        "service": accepted.service.name,
        "outcome": "resent" if accepted.resent else "accepted",  # resent: its original receipt again
    }


def _refused_facts(fault: Fault) -> dict[str, str | None]:
    return {
        "message_id": fault.message_id,
        "sender": fault.sender,
        "service": fault.service,
        "outcome": "refused",
        "fault_code": fault.code,
    }


def _database_unavailable(exc: DBAPIError) -> bool:
    """The database failed as a whole (gone, read-only, full), not this message's statement."""
    if isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated:
        return True
    return getattr(exc.orig, "sqlstate", None) == READ_ONLY_TRANSACTION


def _read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing it before parsing when it is larger than ``limit`` bytes."""
    mimetype = request.mimetype
    if mimetype not in MEDIA_TYPES:
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
    response = Response(body, status=status, content_type=SOAP_CONTENT_TYPE)
    response.headers.update(NO_SNIFF)
    return response
