"""``/graduate/history`` (the data tracker) and ``/graduate/offers`` (employment agreement offers).

The history is the core's (``gateway.graduates.history``): every use and refused attempt of the
graduate's authorisations and every message about them, newest first, selected by their account
and keyed identity hash only. ``?grant=<id>`` narrows it to one authorisation.

An offer is accepted or declined after a confirmation page; the core records the answer and the
gateway sends it on to the university and the employer (``gateway.graduates.offers``). Another
graduate's offer is answered like one that does not exist: 404.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from gateway.codes.regions import lookup_region
from gateway.errors import OfferResponseRefused
from gateway.graduates.services import EVENTS, Offer, history, offers, respond_to_offer
from gateway.grants import scope
from gateway.portal.session import graduate_required, own_account
from gateway.store.db import transaction
from gateway.web.context import gateway
from gateway.web.i18n import translate

blueprint = Blueprint("history", __name__)

# OfferResponseRefused codes ("not_found" is a 404).
OFFER_REFUSALS = {
    "already_answered": "graduate.offer.refused.already_answered",
    "expired": "graduate.offer.refused.expired",
    "not_yet_valid": "graduate.offer.refused.not_yet_valid",
}
# Why a verification was refused, in the graduate's words (the fault code is shown beside it).
FAULT_TEXTS = {
    "AUTHORISATION_MISSING": "graduate.fault.missing",
    "AUTHORISATION_INVALID": "graduate.fault.invalid",
    "AUTHORISATION_WRONG_VERIFIER": "graduate.fault.wrong_verifier",
    "AUTHORISATION_SUBJECT_MISMATCH": "graduate.fault.subject_mismatch",
    "AUTHORISATION_REVOKED": "graduate.fault.revoked",
    "AUTHORISATION_EXPIRED": "graduate.fault.expired",
    "AUTHORISATION_EXHAUSTED": "graduate.fault.exhausted",
    "AUTHORISATION_INSUFFICIENT_SCOPE": "graduate.fault.insufficient_scope",
    "AUTHORISATION_THROTTLED": "graduate.fault.throttled",
}
OFFER_DONE = {"accept": "graduate.offer.done.accept", "decline": "graduate.offer.done.decline"}


@blueprint.get("/history")
@graduate_required
def index() -> ResponseReturnValue:
    grant_id = request.args.get("grant", "")[:36] or None
    with gateway().sessions() as session:
        items = history(session, own_account(session))
    if grant_id is not None:
        items = [item for item in items if item.grant_id == grant_id]
    return render_template(
        "graduate/history.html",
        items=items,
        grant_id=grant_id,
        facts=scope.FACTS,
        purposes=scope.PURPOSES,
        events=set(EVENTS.values()),
        fault_text=fault_text,
    )


def fault_text(code: str | None) -> str:
    """What a refusal's fault code means for the graduate (any other code: the request was refused)."""
    return translate(FAULT_TEXTS.get(code or "", "graduate.fault.other"))


def _region_name(code: str) -> str:
    found = lookup_region(code)
    return f"{found.name} ({code})" if found else code


def _own_offer(offer_pk: int) -> Offer:
    context = gateway()
    with context.sessions() as session:
        found = [o for o in offers(session, own_account(session), context.clock.now()) if o.agreement_pk == offer_pk]
    if not found:
        abort(404)
    return found[0]


@blueprint.get("/offers")
@graduate_required
def offers_page() -> ResponseReturnValue:
    context = gateway()
    with context.sessions() as session:
        found = offers(session, own_account(session), context.clock.now())
    return render_template("graduate/offers.html", offers=found, region_name=_region_name)


@blueprint.route("/offers/<int:offer_pk>/<any(accept, decline):decision>", methods=["GET", "POST"])
@graduate_required
def answer(offer_pk: int, decision: str) -> ResponseReturnValue:
    """GET: the confirmation page; POST: the answer, sent on to the university and the employer."""
    if request.method == "GET":
        offer = _own_offer(offer_pk)
        return render_template("graduate/offer_answer.html", offer=offer, decision=decision, region_name=_region_name)
    context = gateway()
    try:
        with transaction(context.sessions) as session:
            respond_to_offer(
                session,
                context.originator,
                own_account(session),
                offer_pk,
                decision == "accept",
                context.clock.now(),
                enqueue=context.delivery.enqueue,
            )
    except OfferResponseRefused as exc:
        if exc.code == "not_found":
            abort(404)
        key = OFFER_REFUSALS.get(exc.code)
        flash(translate(key) if key else exc.message, "error")
        return redirect(url_for("graduate.history.offers_page"), 303)
    flash(translate(OFFER_DONE[decision]), "ok")
    return redirect(url_for("graduate.history.offers_page"), 303)
