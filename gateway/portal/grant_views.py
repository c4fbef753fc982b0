"""``/graduate/grants/``: a graduate's authorisations: create, list, show (token, short code, QR), revoke, pause.

The rules are the core's (``gateway.grants.services``); these views read the form, call it, and
put each refusal into the graduate's language. Another graduate's grant is answered exactly like
one that does not exist: 404. Revocation asks for confirmation on a page of its own (no script).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from sqlalchemy.orm import Session

from gateway.errors import GrantInvalid, GrantRefused
from gateway.grants import scope
from gateway.grants.services import (
    MAX_PURPOSE_TEXT,
    GrantSummary,
    create_grant,
    eligible_verifiers,
    grant_of,
    grants_of,
    may_verify,
    pause,
    resume,
    revoke,
    token_for,
)
from gateway.grants.tokens import qr_svg
from gateway.portal.session import graduate_required, own_account
from gateway.registry.models import Participant
from gateway.store.db import transaction
from gateway.web.context import gateway
from gateway.web.i18n import translate

blueprint = Blueprint("grants", __name__, url_prefix="/grants")

# The fields of a GrantInvalid, each with a text in both languages (a test checks the catalogs).
INVALID_FIELDS = {
    "verifier": "graduate.grant.invalid.verifier",
    "facts": "graduate.grant.invalid.facts",
    "purpose": "graduate.grant.invalid.purpose",
    "purpose_text": "graduate.grant.invalid.purpose_text",
    "valid_days": "graduate.grant.invalid.valid_days",
    "max_uses": "graduate.grant.invalid.max_uses",
}
# GrantRefused codes for revoke / pause / resume ("not_found" is a 404).
REFUSALS = {
    "already_revoked": "graduate.grant.refused.already_revoked",
    "not_active": "graduate.grant.refused.not_active",
    "not_paused": "graduate.grant.refused.not_paused",
}
DONE = {
    "revoke": "graduate.grant.done.revoke",
    "pause": "graduate.grant.done.pause",
    "resume": "graduate.grant.done.resume",
}
# The order of verifier kinds in the form's choice.
VERIFIER_KINDS = ("household_registration_office", "talent_service_agency", "employer")


def _verifier_groups(session: Session) -> list[tuple[str, list[Participant]]]:
    found = eligible_verifiers(session)
    kinds = [*VERIFIER_KINDS, *sorted({p.kind for p in found} - set(VERIFIER_KINDS))]
    groups = [(kind, [p for p in found if p.kind == kind]) for kind in kinds]
    return [(kind, members) for kind, members in groups if members]


@dataclass(frozen=True)
class GrantForm:
    """What the new-grant form holds (as typed: a refused form comes back as it was filled in)."""

    verifier: str = ""
    facts: tuple[str, ...] = ()
    purpose: str = ""
    purpose_text: str = ""
    valid_days: str = str(scope.DEFAULT_VALID_DAYS)
    max_uses: str = str(scope.DEFAULT_MAX_USES)

    @classmethod
    def posted(cls) -> GrantForm:
        form = request.form
        return cls(
            verifier=form.get("verifier", "")[:18],
            facts=tuple(form.getlist("facts")[: len(scope.FACTS) + 1]),
            purpose=form.get("purpose", "")[:32],
            purpose_text=form.get("purpose_text", "")[:1000],
            valid_days=form.get("valid_days", "").strip()[:4] or str(scope.DEFAULT_VALID_DAYS),
            max_uses=form.get("max_uses", "").strip()[:4] or str(scope.DEFAULT_MAX_USES),
        )


def _whole_number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _invalid(field: str) -> str:
    """The graduate's words for a refused field (the limits filled in)."""
    limit = scope.MAX_VALID_DAYS if field == "valid_days" else scope.MAX_USES
    return translate(INVALID_FIELDS[field], max=limit)


def grant_form_errors(session: Session, form: GrantForm) -> dict[str, str]:
    """Every field's problem at once, in the graduate's words (the core checks again when it creates)."""
    errors: dict[str, str] = {}
    verifier = session.get(Participant, form.verifier.strip().upper()) if form.verifier.strip() else None
    if not form.verifier.strip():
        errors["verifier"] = translate("graduate.grant.invalid.verifier_missing")
    elif verifier is None or not may_verify(session, verifier):
        errors["verifier"] = _invalid("verifier")
    if not form.facts or not set(form.facts) <= set(scope.FACTS):
        errors["facts"] = _invalid("facts")
    if form.purpose not in scope.PURPOSES:
        errors["purpose"] = _invalid("purpose")
    text = form.purpose_text.strip()
    if (form.purpose == "other" and not text) or len(text) > MAX_PURPOSE_TEXT:
        errors["purpose_text"] = _invalid("purpose_text")
    valid_days, max_uses = _whole_number(form.valid_days), _whole_number(form.max_uses)
    if valid_days is None or not 1 <= valid_days <= scope.MAX_VALID_DAYS:
        errors["valid_days"] = _invalid("valid_days")
    if max_uses is None or not 1 <= max_uses <= scope.MAX_USES:
        errors["max_uses"] = _invalid("max_uses")
    return errors


def _form_page(form: GrantForm, errors: dict[str, str], status: int = 200) -> ResponseReturnValue:
    context = gateway()
    with context.sessions() as session:
        groups = _verifier_groups(session)
    page = render_template(
        "graduate/grant_new.html",
        groups=groups,
        facts=scope.FACTS,
        purposes=scope.PURPOSES,
        form=form,
        errors=errors,
        max_days=scope.MAX_VALID_DAYS,
        max_uses=scope.MAX_USES,
    )
    return page, status


@blueprint.get("/")
@graduate_required
def index() -> ResponseReturnValue:
    context = gateway()
    with context.sessions() as session:
        grants = grants_of(session, own_account(session), context.clock.now())
    return render_template("graduate/grants.html", grants=grants)


@blueprint.route("/new", methods=["GET", "POST"])
@graduate_required
def new() -> ResponseReturnValue:
    if request.method == "GET":
        return _form_page(GrantForm(verifier=request.args.get("verifier", "")[:18]), {})
    form = GrantForm.posted()
    with gateway().sessions() as session:
        errors = grant_form_errors(session, form)
    if errors:
        return _form_page(form, errors, 400)
    valid_days, max_uses = int(form.valid_days), int(form.max_uses)
    context = gateway()
    try:
        with transaction(context.sessions) as session:
            issued = create_grant(
                session,
                context.grant_tokens,
                own_account(session),
                form.verifier,
                form.facts,
                form.purpose,
                form.purpose_text,
                context.clock.now(),
                valid_days=valid_days,
                max_uses=max_uses,
            )
            grant_id = issued.grant.id
    except GrantInvalid as exc:
        if exc.field in INVALID_FIELDS:
            return _form_page(form, {exc.field: _invalid(exc.field)}, 400)
        return _form_page(form, {"form": translate("graduate.grant.invalid.other")}, 400)
    flash(translate("graduate.grant.created"), "ok")
    return redirect(url_for("graduate.grants.show", grant_id=grant_id))


def _own_grant(session: Session, grant_id: str) -> GrantSummary:
    try:
        return grant_of(session, own_account(session), grant_id, gateway().clock.now())
    except GrantRefused:
        abort(404)


@blueprint.get("/<grant_id>")
@graduate_required
def show(grant_id: str) -> ResponseReturnValue:
    context = gateway()
    with context.sessions() as session:
        summary = _own_grant(session, grant_id)
        usable = summary.state in (scope.GrantState.ACTIVE, scope.GrantState.PAUSED)
        token = token_for(context.grant_tokens, summary.grant) if usable else None
    # segno's inline SVG (no script, no text: only the modules' path), put into the page as it is.
    qr = Markup(qr_svg(token)) if token else None  # noqa: S704
    return render_template("graduate/grant.html", summary=summary, token=token, qr=qr)


@blueprint.get("/<grant_id>/revoke")
@graduate_required
def confirm_revoke(grant_id: str) -> ResponseReturnValue:
    with gateway().sessions() as session:
        summary = _own_grant(session, grant_id)
    return render_template("graduate/grant_revoke.html", summary=summary)


@blueprint.post("/<grant_id>/<any(revoke, pause, resume):action>")
@graduate_required
def change(grant_id: str, action: str) -> ResponseReturnValue:
    context = gateway()
    step = {"revoke": revoke, "pause": pause, "resume": resume}[action]
    try:
        with transaction(context.sessions) as session:
            step(session, own_account(session), grant_id, context.clock.now())
    except GrantRefused as exc:
        if exc.code == "not_found":
            abort(404)
        key = REFUSALS.get(exc.code)
        flash(translate(key) if key else exc.message, "error")
        return redirect(url_for("graduate.grants.show", grant_id=grant_id), 303)
    flash(translate(DONE[action]), "ok")
    if request.form.get("back") == "list":
        return redirect(url_for("graduate.grants.index"), 303)
    return redirect(url_for("graduate.grants.show", grant_id=grant_id), 303)


@blueprint.app_template_global()
def grant_state_class(state: str) -> str:
    """The CSS class of a grant state (green for active, amber for paused, red for the rest)."""
    return {"active": "status-ok", "paused": "status-warn"}.get(str(state), "status-bad")
