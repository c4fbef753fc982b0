"""Who is signed in to the portal: :func:`graduate_required`, :func:`own_account`, and page formatting.

A portal session (``gateway.web.security``, realm ``graduate``) holds the account id only. Every
page that shows a graduate's data runs under :func:`graduate_required`, which reads the account
again on each request: an account that no longer exists ends its session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import abort, g, redirect, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from gateway.graduates.models import GraduateAccount
from gateway.web.context import gateway
from gateway.web.i18n import beijing_time
from gateway.web.security import had_session, sign_out, signed_in

REALM = "graduate"
ROLE = "graduate"
F = TypeVar("F", bound=Callable[..., ResponseReturnValue])


@dataclass(frozen=True)
class Graduate:
    """The signed-in graduate as pages show them: the account id and the name on the filed registration."""

    account_id: int
    name: str


def graduate_required(view: F) -> F:
    """Run ``view`` only for a signed-in graduate (``g.graduate``); anyone else goes to the sign-in page.

    An expired session (idle or past its maximum age) is a signed-out one: the graduate signs in
    again and comes back to the page they asked for (a GET; a form sent after expiry is not replayed).
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        context = gateway()
        expired = had_session(REALM)  # read before signed_in, which ends an expired session
        who = signed_in(REALM, context.settings, context.clock)
        if who is None:
            target = request.full_path.rstrip("?") if request.method == "GET" else None
            # "Your session ended" only for someone who was signed in; others are simply asked to sign in.
            return redirect(url_for("graduate.sign_in", next=target, again=1 if expired else None))
        with context.sessions() as session:
            account = session.get(GraduateAccount, who.account_id)
            if account is None:
                sign_out()
                return redirect(url_for("graduate.sign_in"))
            g.graduate = Graduate(account.id, account.name)
        return view(*args, **kwargs)

    return cast(F, wrapper)


def own_account(session: Session) -> GraduateAccount:
    """The signed-in graduate's account in ``session`` (for the core's services, which take the account)."""
    account = session.get(GraduateAccount, g.graduate.account_id)
    if account is None:  # removed between the check and now
        abort(403)
    return account


def china_time(moment: datetime | None) -> str:
    """``moment`` as a page shows it: Beijing time in the one format of every page (``gateway.web.i18n``)."""
    return beijing_time(moment)
