"""``gateway archives overdue``: archive transfers past their deadlines."""

from __future__ import annotations

import json
from datetime import datetime

import click
from sqlalchemy import select

from gateway.archives.overdue import overdue_transfers
from gateway.cli.common import clock, load_settings, store
from gateway.clock import BEIJING, end_of_day
from gateway.registry.models import Participant


@click.group()
def archives() -> None:
    """Follow personnel archive transfers."""


@archives.command("overdue")
@click.option(
    "--at",
    "at_day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Judge on this day (YYYY-MM-DD): at its end, Beijing time, as the auditor UI does. Default: now.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def overdue_(at_day: datetime | None, as_json: bool) -> None:
    """List transfers not dispatched or not receipted in time, with the days overdue.

    Lines show the transfer number, the holder and the receiver, never the graduate's identity.
    Times are Beijing time (UTC+8).
    """
    at = end_of_day(at_day.date()) if at_day is not None else clock.now()
    with store(load_settings()) as session:
        late = overdue_transfers(session, at)
        names = {p.id: p.name for p in session.scalars(select(Participant))}
    if as_json:
        rows = [
            {
                "transfer_number": o.transfer_number,
                "holder": o.holder_id,
                "holder_name": names.get(o.holder_id),
                "receiver": o.receiver_id,
                "receiver_name": names.get(o.receiver_id),
                "overdue": o.what,
                "due_at": o.due_at.astimezone(BEIJING).isoformat(),
                "days_overdue": o.days,
            }
            for o in late
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for o in late:
        click.echo(
            f"{o.transfer_number}  holder {o.holder_id} {names.get(o.holder_id, '')}  "
            f"receiver {o.receiver_id} {names.get(o.receiver_id, '')}  "
            f"{o.what} by {o.days} day(s) (due {_beijing(o.due_at)})"
        )
    judged = f"on {at_day:%Y-%m-%d} (at the end of that day, {_beijing(at)})" if at_day else f"at {_beijing(at)}"
    click.echo(f"{len(late)} overdue transfer(s) {judged}")


def _beijing(moment: datetime) -> str:
    return f"{moment.astimezone(BEIJING):%Y-%m-%d %H:%M} Beijing time"
