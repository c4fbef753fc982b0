"""``/graduate/notices`` (what happened to the graduate's paperwork) and ``/graduate/account`` (e-mail for it).

Notices are the domain's (``gateway.notices``), selected by the signed-in graduate's account and
keyed identity hash only; opening the page marks them read. Each shows how its e-mail stands:
sent, waiting for another attempt (with the error), failed for good, or not e-mailed (no
confirmed address). An address is used only once confirmed by the link e-mailed to it; the
link is signed (itsdangerous, with the app's secret key) for this account and this address, and
expires. Every e-mail, the link included, is sent by the sweep, never by the request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from gateway.graduates.models import GraduateAccount
from gateway.notices.models import MailAddress, MailState, Notice, OutgoingMail
from gateway.notices.texts import Words, words
from gateway.portal.session import graduate_required, own_account
from gateway.registry.models import Participant
from gateway.store.db import transaction
from gateway.web.context import gateway
from gateway.web.i18n import LANGUAGES, current_language, translate

blueprint = Blueprint("notices", __name__)
CONFIRM_SALT = "graduate-mail-confirm"
CONFIRM_MAX_AGE = 3 * 24 * 3600
# A plain address check (one @, a dot in the domain, no spaces): the confirmation link is the real test.
_ADDRESS = re.compile(r"[^@\s]{1,64}@[^@\s.]{1,63}(\.[^@\s.]{1,63}){1,8}")


@dataclass(frozen=True)
class ShownNotice:
    notice: Notice
    words: Words
    mail: OutgoingMail | None
    unread: bool


def _mine(account: GraduateAccount) -> ColumnElement[bool]:
    return or_(Notice.account_id == account.id, Notice.identity_hash == account.identity_hash)


def unread_count(session: Session, account: GraduateAccount) -> int:
    return int(session.scalar(select(func.count()).where(_mine(account), Notice.read_at.is_(None))) or 0)


@blueprint.get("/notices")
@graduate_required
def index() -> ResponseReturnValue:
    context = gateway()
    language = current_language()
    with transaction(context.sessions) as session:
        account = own_account(session)
        rows = session.execute(
            select(Notice, OutgoingMail)
            .outerjoin(OutgoingMail, OutgoingMail.notice_id == Notice.id)
            .where(_mine(account))
            .order_by(Notice.at.desc(), Notice.id.desc())
            .limit(500)
        ).all()
        names = {pid: name for pid, name in session.execute(select(Participant.id, Participant.name))}
        shown = [ShownNotice(n, words(n.kind, n.facts, language, names), m, n.read_at is None) for n, m in rows]
        session.execute(
            update(Notice)
            .where(_mine(account), Notice.read_at.is_(None))
            .values(read_at=context.clock.now())
            .execution_options(synchronize_session=False)
        )
        session.expunge_all()
    g.unread_notices = 0
    return render_template("graduate/notices.html", notices=shown, mail_on=context.settings.mail.enabled)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=CONFIRM_SALT)


def _account_page(error: str | None = None, address: str = "", status: int = 200) -> ResponseReturnValue:
    context = gateway()
    with context.sessions() as session:
        account = own_account(session)
        found = session.get(MailAddress, account.id)
        session.expunge_all()
    page = render_template(
        "graduate/account.html",
        address=found,
        typed=address,
        error=error,
        mail_on=context.settings.mail.enabled,
        languages=LANGUAGES,
    )
    return page, status


@blueprint.get("/account")
@graduate_required
def account() -> ResponseReturnValue:
    return _account_page()


@blueprint.post("/account/email")
@graduate_required
def set_email() -> ResponseReturnValue:
    """Keep the address (unconfirmed) and queue the e-mail with its confirmation link."""
    context = gateway()
    if not context.settings.mail.enabled:
        return _account_page(translate("graduate.account.mail_off"), status=409)
    address = request.form.get("email", "").strip()[:254]
    language = request.form.get("language", current_language())
    if language not in LANGUAGES:
        language = current_language()
    if not _ADDRESS.fullmatch(address):
        return _account_page(translate("graduate.account.email_invalid"), address, 400)
    now = context.clock.now()
    with transaction(context.sessions) as session:
        me = own_account(session)
        found = session.get(MailAddress, me.id)
        if found is None:
            found = MailAddress(account_id=me.id, address=address, language=language, requested_at=now)
            session.add(found)
        found.address, found.language, found.requested_at, found.confirmed_at = address, language, now, None
        token = _serializer().dumps({"a": me.id, "e": address})
        link = url_for("graduate.notices.confirm", token=token, _external=True)
        session.add(context.mailer.confirmation(found, link))
    flash(translate("graduate.account.confirm_sent", address=address), "ok")
    return redirect(url_for("graduate.notices.account"), 303)


@blueprint.post("/account/email/remove")
@graduate_required
def remove_email() -> ResponseReturnValue:
    with transaction(gateway().sessions) as session:
        found = session.get(MailAddress, own_account(session).id)
        if found is not None:
            session.delete(found)
    flash(translate("graduate.account.removed"), "ok")
    return redirect(url_for("graduate.notices.account"), 303)


@blueprint.get("/account/confirm/<token>")
@graduate_required
def confirm(token: str) -> ResponseReturnValue:
    """The link from the e-mail: the address is confirmed when it is still this account's."""
    try:
        data = _serializer().loads(token[:500], max_age=CONFIRM_MAX_AGE)
    except BadSignature:
        return _account_page(translate("graduate.account.link_invalid"), status=400)
    context = gateway()
    with transaction(context.sessions) as session:
        me = own_account(session)
        found = session.get(MailAddress, me.id)
        matches = isinstance(data, dict) and data.get("a") == me.id and found is not None
        if not matches or found is None or data.get("e") != found.address:
            return _account_page(translate("graduate.account.link_invalid"), status=400)
        if found.confirmed_at is None:
            found.confirmed_at = context.clock.now()
    flash(translate("graduate.account.confirmed"), "ok")
    return redirect(url_for("graduate.notices.account"), 303)


def mail_state_key(notice: Notice, mail: OutgoingMail | None) -> str:
    """The catalog key saying how a notice's e-mail stands."""
    if mail is not None:
        return f"graduate.notices.mail.{mail.status}"
    if notice.mail_state == MailState.NEW:
        return "graduate.notices.mail.new"
    if notice.mail_state == MailState.NO_ADDRESS:
        return "graduate.notices.mail.no_address"
    return "graduate.notices.mail.not_mailed"


@blueprint.app_template_global()
def notice_mail_state(item: ShownNotice) -> str:
    return translate(mail_state_key(item.notice, item.mail))


@blueprint.app_context_processor
def _unread() -> dict[str, object]:
    """How many notices the signed-in graduate has not seen (the navigation shows it)."""
    if g.get("graduate") is None:
        return {}
    if "unread_notices" not in g:
        with gateway().sessions() as session:
            account = session.get(GraduateAccount, g.graduate.account_id)
            g.unread_notices = unread_count(session, account) if account is not None else 0
    return {"unread_notices": g.unread_notices}
