"""``/graduate/history`` (the data tracker) and ``/graduate/offers`` (employment agreement offers).

IN PROGRESS: waiting for ``gateway.graduates.services.history`` / ``offers`` / ``respond_to_offer``
from the grants branch; until then these pages render nothing.
"""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from gateway.portal.session import graduate_required

blueprint = Blueprint("history", __name__)


@blueprint.get("/history")
@graduate_required
def index() -> ResponseReturnValue:
    return render_template("graduate/home.html")


@blueprint.get("/offers")
@graduate_required
def offers() -> ResponseReturnValue:
    return render_template("graduate/home.html")
