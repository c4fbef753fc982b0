"""``/staff/sign-in`` and ``/staff/sign-out``, and :func:`staff_required` for the pages of a role.

Auditors land on the auditor UI (``/audit/``); administrators on ``/staff/``, which says that the
administration is done on the command line (``gateway participants|keys|access|users``): web pages
for administrators are not built. Every sign-in, refused sign-in and sign-out is an audit entry.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from gateway.staff.models import Role, StaffUser
from gateway.staff.services import authenticate, signed_out
from gateway.store.db import transaction
from gateway.web.context import gateway
from gateway.web.i18n import translate
from gateway.web.security import SignedIn, safe_next, sign_in, sign_in_limit, sign_out, signed_in

blueprint = Blueprint("staff", __name__, url_prefix="/staff")
REALM = "staff"
F = TypeVar("F", bound=Callable[..., ResponseReturnValue])


def staff_required(role: Role) -> Callable[[F], F]:
    """Let a view run only for a signed-in staff account of ``role`` (``g.staff``); others go to sign-in (or 403)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            context = gateway()
            who = signed_in(REALM, context.settings, context.clock)
            if who is None:
                return redirect(url_for("staff.sign_in", next=request.full_path.rstrip("?")))
            if who.role != role:
                abort(403)
            with context.sessions() as session:
                user = session.get(StaffUser, who.account_id)
                if user is None or not user.enabled:
                    sign_out()
                    return redirect(url_for("staff.sign_in"))
                g.staff = who
                g.staff_username = user.username
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _landing(role: str) -> str:
    """Where a role's pages start (and the only place its ``next`` may lead)."""
    return "/audit/" if role == Role.AUDITOR else url_for("staff.home")


@blueprint.route("/sign-in", methods=["GET", "POST"], endpoint="sign_in")
@sign_in_limit("username")
def sign_in_page() -> ResponseReturnValue:
    next_url = safe_next(request.args.get("next"), "/audit/", "/staff/")
    if request.method == "GET":
        return render_template("staff/sign_in.html", next=next_url, error=None, username=None)
    context = gateway()
    username = request.form.get("username", "").strip().lower()
    password = request.form.get("password", "")
    with transaction(context.sessions) as session:
        user = authenticate(session, username, password, context.clock.now(), request.remote_addr or "")
        user_id, role = (user.id, user.role) if user else (0, "")
    if user is None:
        return render_template(
            "staff/sign_in.html", next=next_url, error=translate("staff.sign_in.refused"), username=username
        ), 401
    sign_in(REALM, user_id, role, context.clock)
    return redirect(safe_next(next_url, _landing(role)) or _landing(role))


@blueprint.post("/sign-out", endpoint="sign_out")
def sign_out_page() -> ResponseReturnValue:
    context = gateway()
    who: SignedIn | None = signed_in(REALM, context.settings, context.clock)
    if who is not None:
        with transaction(context.sessions) as session:
            signed_out(session, who.account_id, context.clock.now())
    sign_out()
    return redirect(url_for("staff.sign_in"))


@blueprint.get("/")
@staff_required(Role.ADMINISTRATOR)
def home() -> ResponseReturnValue:
    return render_template("staff/home.html", username=g.staff_username)
