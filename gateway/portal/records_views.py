"""``/graduate/registration`` (我的就业去向登记) and ``/graduate/archive`` (我的档案): the graduate's own paperwork.

Read from the gateway's own records (``gateway.graduates.records``), selected by the signed-in
graduate's keyed identity hash: there is no id in these addresses, so no other graduate's can be
asked for. The archive page names the organisations with their public contact from the directory.
"""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from gateway.codes.lists import code_list
from gateway.directory.views import PUBLIC_KINDS, Organisation, organisation
from gateway.graduates.records import archive_of, registrations_of
from gateway.notices.texts import dispatch_method
from gateway.portal.session import graduate_required, own_account
from gateway.registry.models import Participant
from gateway.web.context import gateway
from gateway.web.i18n import current_language, translate

blueprint = Blueprint("records", __name__)


def _participants(session: Session, ids: set[str]) -> dict[str, Participant]:
    found = session.scalars(
        select(Participant).options(selectinload(Participant.regions_served)).where(Participant.id.in_(ids))
    )
    return {p.id: p for p in found}


def _contact(participant: Participant | None) -> Organisation | None:
    """The directory's public entry of a service organisation (none for an employer: it publishes none)."""
    if participant is None or participant.kind not in PUBLIC_KINDS:
        return None
    return organisation(participant)


@blueprint.get("/registration")
@graduate_required
def registration() -> ResponseReturnValue:
    with gateway().sessions() as session:
        account = own_account(session)
        records = registrations_of(session, account.identity_hash)
        ids = {r.university_id for r in records} | {r.department_id for r in records}
        ids |= {e.by for r in records for e in r.events}
        names = {pid: p.name for pid, p in _participants(session, ids).items()}
    destinations = code_list("destination-codes")
    language = current_language()

    def destination(code: str) -> str:
        row = destinations.get(code)
        return translate("graduate.code_value", name=row[f"name_{language}"], code=code) if row else code

    return render_template("graduate/registration.html", records=records, names=names, destination=destination)


@blueprint.get("/archive")
@graduate_required
def archive() -> ResponseReturnValue:
    context = gateway()
    with context.sessions() as session:
        account = own_account(session)
        record = archive_of(session, account.identity_hash, context.clock.now())
        ids = {t.holder_id for t in record.transfers} | {t.receiver_id for t in record.transfers}
        ids |= {pid for pid in (record.holder_id, record.in_transit_to) if pid}
        found = _participants(session, ids)
        names = {pid: p.name for pid, p in found.items()}
        contacts = {pid: _contact(p) for pid, p in found.items()}
    language = current_language()
    return render_template(
        "graduate/archive.html",
        record=record,
        names=names,
        contacts=contacts,
        method=lambda code: dispatch_method(code or "", language),
        now=context.clock.now(),
    )
