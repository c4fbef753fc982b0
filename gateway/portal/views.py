"""``/graduate/``: activation, sign-in and sign-out, and the graduate's home page.

The pages of grants (``/graduate/grants/``), the access history and agreement offers are blueprints
of their own, nested under this one (:mod:`gateway.portal.grant_views`,
:mod:`gateway.portal.history_views`).

An identity number travels only in a POST body: it is never put into a URL, a log line or a page,
except masked (``1101**********002X``) when a refusal echoes what was typed. Failed sign-in and
activation POSTs are rate limited per identity number (keyed hash) and client address
(``gateway.web.security.sign_in_limit``). Signing out ends the session on the server. Every
sign-in, refused sign-in and sign-out is an audit entry (account id and client address only).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from gateway.audit.entries import AuditEvent, Value
from gateway.audit.log import record
from gateway.errors import ActivationRefused, SignInRefused
from gateway.graduates.accounts import check_password
from gateway.graduates.services import activate, authenticate
from gateway.portal import grant_views, history_views, notices_views, records_views
from gateway.portal.session import REALM, ROLE, china_time, graduate_required
from gateway.privacy import is_identity_number, mask_identity
from gateway.store.db import transaction
from gateway.web.context import gateway
from gateway.web.i18n import current_language, translate
from gateway.web.pages import privacy_notice
from gateway.web.security import safe_next, sign_in, sign_in_limit, sign_out, signed_in

blueprint = Blueprint(
    "graduate",
    __name__,
    url_prefix="/graduate",
    static_folder=str(Path(__file__).resolve().parent / "static"),
    static_url_path="/static",
)
blueprint.register_blueprint(grant_views.blueprint)
blueprint.register_blueprint(history_views.blueprint)
blueprint.register_blueprint(records_views.blueprint)
blueprint.register_blueprint(notices_views.blueprint)
blueprint.add_app_template_filter(china_time, "china_time")

# ActivationRefused codes of gateway.graduates with a text of their own; others show the core's message.
ACTIVATION_REFUSALS = {
    "identity_number_invalid": "graduate.activate.refused.identity_number_invalid",
    "password_too_weak": "graduate.activate.refused.password_too_weak",
    "no_match": "graduate.activate.refused.no_match",
    "already_activated": "graduate.activate.refused.already_activated",
}
MAX_FIELD = 256


def _field(name: str) -> str:
    return request.form.get(name, "")[:MAX_FIELD]


def _audit(session: Session, kind: str, **facts: Value) -> None:
    event = AuditEvent(kind, gateway().clock.now(), {**facts, "client": request.remote_addr or ""})
    record(session, event)


@blueprint.get("/")
@graduate_required
def home() -> ResponseReturnValue:
    return render_template("graduate/home.html")


@blueprint.route("/sign-in", methods=["GET", "POST"], endpoint="sign_in")
@sign_in_limit("identity_number")
def sign_in_page() -> ResponseReturnValue:
    next_url = safe_next(request.args.get("next"), "/graduate/")
    notice = None
    if request.args.get("again"):
        notice = translate("graduate.sign_in.again")
    elif request.args.get("signed_out"):
        notice = translate("graduate.sign_in.signed_out")
    if request.method == "GET":
        context = gateway()
        if signed_in(REALM, context.settings, context.clock) is not None:
            return redirect(next_url or url_for("graduate.home"))
        return render_template("graduate/sign_in.html", next=next_url, error=None, notice=notice)
    context = gateway()
    identity_number = _field("identity_number")
    with transaction(context.sessions) as session:  # the sign-in and its audit entry (or the refusal's) together
        try:
            account = authenticate(session, context.hasher, identity_number, _field("password"), context.clock.now())
        except SignInRefused:
            _audit(session, "graduate.sign_in_refused")
            account_id = None
        else:
            account_id = account.id
            _audit(session, "graduate.signed_in", account=account_id)
    if account_id is None:
        error = translate("graduate.sign_in.refused", number=mask_identity(identity_number))
        return render_template("graduate/sign_in.html", next=next_url, error=error, notice=None), 401
    sign_in(REALM, account_id, ROLE, context.clock)
    return redirect(next_url or url_for("graduate.home"))


@blueprint.route("/activate", methods=["GET", "POST"])
@sign_in_limit("identity_number")
def activate_page() -> ResponseReturnValue:
    if request.method == "GET":
        return _activation_form({}, None, "", "")
    context = gateway()
    identity_number, name = _field("identity_number"), _field("name").strip()
    verification_number, password = _field("verification_number").strip(), _field("password")
    errors = activation_errors(
        identity_number, name, verification_number, password, _field("password_confirm"), request.form.get("consent")
    )

    def refused(message: str | None, status: int = 400) -> ResponseReturnValue:
        # The name and verification number come back to save typing; the identity number only masked.
        masked = mask_identity(identity_number) if identity_number.strip() else None
        return _activation_form(errors, message, name, verification_number, masked), status

    if errors:
        return refused(None)
    try:
        with transaction(context.sessions) as session:
            account = activate(
                session, context.hasher, identity_number, name, verification_number, password, context.clock.now()
            )
            account_id = account.id
    except ActivationRefused as exc:
        status = 409 if exc.code == "already_activated" else 400
        key = ACTIVATION_REFUSALS.get(exc.code)
        return refused(translate(key) if key else exc.message, status)
    sign_in(REALM, account_id, ROLE, context.clock)
    return redirect(url_for("graduate.home", welcome=1))


def activation_errors(
    identity_number: str,
    name: str,
    verification_number: str,
    password: str,
    password_confirm: str,
    consent: str | None,
) -> dict[str, str]:
    """Every field's problem at once, each in the graduate's words (empty: the form is complete).

    Whether the three facts match a filed registration is the core's to say, once all are given.
    """
    errors: dict[str, str] = {}
    given = {"identity_number": identity_number.strip(), "name": name, "verification_number": verification_number}
    for field, value in {**given, "password": password}.items():
        if not value:
            errors[field] = translate(f"graduate.activate.missing.{field}")
    number = identity_number.strip().upper()
    if number and not is_identity_number(number):
        errors["identity_number"] = translate(ACTIVATION_REFUSALS["identity_number_invalid"])
    if password:
        try:
            check_password(password, number, verification_number.upper())
        except ActivationRefused:
            errors["password"] = translate(ACTIVATION_REFUSALS["password_too_weak"])
    if password != password_confirm:
        errors["password_confirm"] = translate("graduate.activate.password_mismatch")
    if consent != "yes":
        errors["consent"] = translate("graduate.activate.consent_missing")
    return errors


def _activation_form(
    errors: dict[str, str],
    error: str | None,
    name: str,
    verification_number: str,
    masked_number: str | None = None,
) -> str:
    return render_template(
        "graduate/activate.html",
        errors=errors,
        error=error,
        masked_number=masked_number,
        name=name,
        verification_number=verification_number,
        notice=privacy_notice(gateway().settings, current_language()),
    )


@blueprint.post("/sign-out", endpoint="sign_out")
def sign_out_page() -> ResponseReturnValue:
    context = gateway()
    who = signed_in(REALM, context.settings, context.clock)
    if who is not None:
        with transaction(context.sessions) as session:
            _audit(session, "graduate.signed_out", account=who.account_id)
    sign_out()
    return redirect(url_for("graduate.sign_in", signed_out=1))


@blueprint.app_context_processor
def _graduate() -> dict[str, object]:
    return {"graduate": g.get("graduate")}
