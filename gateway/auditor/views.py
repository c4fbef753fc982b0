"""``/audit/``: the auditor UI. Every page needs a signed-in auditor (``staff_required(Role.AUDITOR)``).

Read-only: the two POSTs are the search form (so that an identity number travels only in a
request body, CSRF-protected) and starting a verification run (which records its outcome).

A search for a graduate keeps only the keyed hash of the identity number typed in, in the
auditor's session under a random reference (``graduate=<reference>`` in the result URLs), so that
results can be paged and linked without the number, or its hash, in any URL, page or log line.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, flash, g, make_response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from gateway.archives.overdue import overdue_transfers
from gateway.audit.entries import AuditEvent
from gateway.audit.evidence import EvidenceNotReady, build_bundle
from gateway.audit.log import record
from gateway.audit.publish import CheckpointDirectory
from gateway.auditor import charts as chart_data
from gateway.auditor import integrity, search, story, svg
from gateway.auditor.forms import FieldError, Invalid, local, parse_day
from gateway.auditor.participants import load_participant_story
from gateway.clock import BEIJING, end_of_day
from gateway.errors import NotFound
from gateway.messages.models import DeliveryStatus, Message
from gateway.registrations.models import Registration
from gateway.registry.models import Participant
from gateway.staff.models import Role
from gateway.staff.views import staff_required
from gateway.store.db import transaction
from gateway.web.context import gateway
from gateway.web.i18n import catalog, current_language, translate

blueprint = Blueprint("audit", __name__, url_prefix="/audit")
GRADUATES = "audit.graduates"  # session key: {reference: identity hash}, the last few searched for
KEPT_GRADUATES = 5


@blueprint.app_template_filter("local")
def _local(value: Any) -> str:
    return local(value)


@blueprint.app_template_global("kind_label")
def kind_label(kind: str) -> str:
    """The audit entry kind in words, or the kind itself for one the catalogs do not know yet."""
    key = f"audit.kind.{kind}"
    return translate(key) if key in catalog(current_language()) else kind


def _service_names() -> list[str]:
    return sorted(s.name for s in gateway().catalog.services)


def _participants() -> dict[str, str]:
    with gateway().sessions() as db:
        return dict(db.execute(select(Participant.id, Participant.name).order_by(Participant.id)).all())


def _remember_graduate(identity_hash: str) -> str:
    reference = secrets.token_urlsafe(12)
    kept = dict(session.get(GRADUATES) or {})
    kept[reference] = identity_hash
    session[GRADUATES] = dict(list(kept.items())[-KEPT_GRADUATES:])
    return reference


def _render_search(
    fields: Mapping[str, str],
    errors: list[FieldError],
    results: search.ResultPage | None = None,
    registrations: list[Registration] | None = None,
) -> ResponseReturnValue:
    return render_template(
        "audit/search.html",
        fields=fields,
        errors=errors,
        services=_service_names(),
        statuses=[s.value for s in DeliveryStatus],
        participants=_participants(),
        results=results,
        registrations=registrations,
        page_args={k: v for k, v in fields.items() if v and k != "page"},
        all_graduates_args={k: v for k, v in fields.items() if v and k not in ("page", "graduate")},
    ), (400 if errors else 200)


@blueprint.get("/", endpoint="search")
@staff_required(Role.AUDITOR)
def search_page() -> ResponseReturnValue:
    """The form, and the messages that match the criteria in the URL (the latest ones without any)."""
    fields = {name: request.args.get(name, "") for name in (*search.FIELDS, "page")}
    graduate: str | None = None
    errors: list[FieldError] = []
    if fields["graduate"]:
        graduate = (session.get(GRADUATES) or {}).get(fields["graduate"])
        if graduate is None:
            errors.append(FieldError("identity_number", "audit.error.graduate_expired"))
    parsed = search.parse_criteria(fields, _service_names(), _participants().__contains__, graduate)
    errors += parsed.errors
    if parsed.criteria is None or errors:
        return _render_search(fields, errors)
    with gateway().sessions() as db:
        results = search.search(db, parsed.criteria)
        registrations = search.registrations_of(db, graduate) if graduate is not None else None
    return _render_search(fields, errors, results, registrations)


@blueprint.post("/")
@staff_required(Role.AUDITOR)
def search_submit() -> ResponseReturnValue:
    """Check the form; an identity number becomes a session reference; then the results by GET."""
    fields = {name: request.form.get(name, "") for name in search.FIELDS if name != "graduate"}
    number = request.form.get("identity_number", "")
    errors: list[FieldError] = []
    reference = None
    if number.strip():
        try:
            reference = _remember_graduate(search.graduate_hash(number, gateway().hasher))
        except Invalid as exc:
            errors.append(exc.error)
    parsed = search.parse_criteria(fields, _service_names(), _participants().__contains__)
    errors += parsed.errors
    if errors:  # the identity number is never echoed back: the field comes back empty
        return _render_search(fields, errors)
    args: dict[str, Any] = {k: v.strip() for k, v in fields.items() if v.strip()}
    if reference is not None:
        args["graduate"] = reference
    return redirect(url_for("audit.search", **args))


@blueprint.get("/messages/<int:message_pk>", endpoint="message")
@staff_required(Role.AUDITOR)
def message_page(message_pk: int) -> ResponseReturnValue:
    with gateway().sessions() as db:
        found = story.load_story(db, message_pk)
    if found is None:
        abort(404)
    return render_template("audit/message.html", story=found)


@blueprint.get("/participants/<participant_id>", endpoint="participant")
@staff_required(Role.AUDITOR)
def participant_page(participant_id: str) -> ResponseReturnValue:
    """A participant's registry entry and every change to it (who, what, the old and the new value)."""
    with gateway().sessions() as db:
        found = load_participant_story(db, participant_id.strip().upper()[:18])
        if found is None:
            abort(404)
        return render_template("audit/participant.html", story=found)


@blueprint.post("/messages/<int:message_pk>/evidence", endpoint="evidence")
@staff_required(Role.AUDITOR)
def evidence_export(message_pk: int) -> ResponseReturnValue:
    """The message's evidence bundle as a download; the export itself is an audit entry (who, which message)."""
    context = gateway()
    try:
        with transaction(context.sessions) as db:
            message = db.get(Message, message_pk)
            if message is None:
                abort(404)
            bundle = build_bundle(
                db, message.message_id, context.settings, sender=message.sender_id, clock=context.clock
            )
            record(
                db,
                AuditEvent(
                    "audit.evidence_exported",
                    context.clock.now(),
                    {"message_id": message.message_id, "sender": message.sender_id, "username": g.staff_username},
                    message_id=message.message_id,
                ),
            )
            name = f"evidence-{message.message_id}.json"
    except EvidenceNotReady:
        flash(translate("audit.message.evidence_not_ready"), "error")
        return redirect(url_for("audit.message", message_pk=message_pk))
    except NotFound as exc:
        flash(translate("audit.message.evidence_unavailable", reason=str(exc)), "error")
        return redirect(url_for("audit.message", message_pk=message_pk))
    response = make_response(bundle)
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/integrity", endpoint="integrity")
@staff_required(Role.AUDITOR)
def integrity_page() -> ResponseReturnValue:
    context = gateway()
    public_key = integrity.checkpoint_key(context.settings.keys_dir)
    # Before the database is read: see held_checkpoints.
    published = CheckpointDirectory(context.settings.checkpoint_dir).latest()
    with context.sessions() as db:
        status = integrity.integrity_status(db)
        held = integrity.held_checkpoints(
            db, context.settings, g.staff_username, public_key, status.checkpoint, published
        )
    problems = integrity.problems(status.last) if status.last is not None else []
    response = make_response(render_template("audit/integrity.html", status=status, problems=problems, held=held))
    if status.running:  # the page follows the run without a script: the browser reloads it
        response.headers["Refresh"] = "3"
    return response


@blueprint.post("/integrity/verify", endpoint="verify")
@staff_required(Role.AUDITOR)
def verify_start() -> ResponseReturnValue:
    context = gateway()
    public_key = integrity.checkpoint_key(context.settings.keys_dir)
    with transaction(context.sessions) as db:
        run = integrity.start_verification(db, g.staff_username, context.clock.now())
        run_id = run.id if run is not None else None
    if run_id is None:
        flash(translate("audit.integrity.already_running"), "error")
    else:
        seen = integrity.seen_anchor(context.settings, g.staff_username)
        integrity.run_in_background(
            context.sessions,
            public_key,
            context.clock,
            run_id,
            CheckpointDirectory(context.settings.checkpoint_dir),
            [seen] if seen is not None else [],
        )
        flash(translate("audit.integrity.started_flash"))
    return redirect(url_for("audit.integrity"))


@blueprint.get("/charts", endpoint="charts")
@staff_required(Role.AUDITOR)
def charts_page() -> ResponseReturnValue:
    context = gateway()
    fields = {name: request.args.get(name, "") for name in ("from", "to", "bin", "service")}
    window, errors = chart_data.parse_window(fields, context.clock.now().astimezone(BEIJING).date())
    service = fields["service"] or None
    if service is not None and service not in _service_names():
        errors.append(FieldError("service", "audit.error.service", {"value": service[:64]}))
    drawn = []
    if window is not None:  # the form shows the range drawn, also when it was left empty
        fields["from"] = window.start.astimezone(BEIJING).date().isoformat()
        fields["to"] = (window.end - timedelta(days=1)).astimezone(BEIJING).date().isoformat()
    if window is not None and not errors:
        with context.sessions() as db:
            drawn = [(c, svg.layout(c)) for c in chart_data.charts(db, window, service)]
    return render_template(
        "audit/charts.html", fields=fields, errors=errors, window=window, drawn=drawn, services=_service_names()
    ), (400 if errors else 200)


@blueprint.get("/archives/overdue", endpoint="overdue")
@staff_required(Role.AUDITOR)
def overdue_page() -> ResponseReturnValue:
    context = gateway()
    at = context.clock.now()
    errors: list[FieldError] = []
    given = request.args.get("at", "")
    try:
        day = parse_day(given, "at")
    except Invalid as exc:
        errors.append(exc.error)
        day = None
    if day is not None:  # judged at the end of that Beijing day, as gateway archives overdue --at does
        at = end_of_day(day)
    with context.sessions() as db:
        late = overdue_transfers(db, at) if not errors else []
    return render_template("audit/overdue.html", late=late, at=at, given=given, errors=errors, names=_participants()), (
        400 if errors else 200
    )
