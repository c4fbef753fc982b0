"""``gateway grants list|uses``: graduates' authorisations and every use of them, for operators.

Nothing here names a graduate: grants are shown by id, account number and verifier.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from sqlalchemy import select

from gateway.cli.common import clock, load_settings, store
from gateway.grants.models import Grant, GrantUse
from gateway.grants.scope import GrantState, state_of


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _print(rows: list[dict[str, Any]], as_json: bool, line: str, noun: str) -> None:
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(line.format(**{k: "-" if v is None else v for k, v in row.items()}))
    click.echo(f"{len(rows)} {noun}")


@click.group()
def grants() -> None:
    """Graduates' authorisations (grants) and their uses."""


@grants.command("list")
@click.option("--verifier", help="Only grants to this participant.")
@click.option("--account", type=int, help="Only this graduate account's grants.")
@click.option("--state", type=click.Choice([s.value for s in GrantState]), help="Only grants in this state now.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_grants(verifier: str | None, account: int | None, state: str | None, limit: int, as_json: bool) -> None:
    """Grants, newest first, with their state now."""
    now = clock.now()
    with store(load_settings()) as session:
        query = select(Grant).order_by(Grant.created_at.desc())
        if verifier:
            query = query.where(Grant.verifier_id == verifier.upper())
        if account is not None:
            query = query.where(Grant.account_id == account)
        rows = []
        for grant in session.scalars(query):
            current = state_of(grant.status, grant.expires_at, grant.uses, grant.max_uses, now)
            if state and current != state:
                continue
            rows.append(
                {
                    "grant": grant.id,
                    "account": grant.account_id,
                    "verifier": grant.verifier_id,
                    "facts": grant.facts,
                    "purpose": grant.purpose,
                    "state": current.value,
                    "uses": grant.uses,
                    "max_uses": grant.max_uses,
                    "created_at": _at(grant.created_at),
                    "expires_at": _at(grant.expires_at),
                }
            )
            if len(rows) == limit:
                break
    line = "{grant} #{account:<5} {state:<9} {uses}/{max_uses} {verifier} {purpose:<21} {facts}  until {expires_at}"
    _print(rows, as_json, line, "grant(s)")


@grants.command("uses")
@click.option("--grant", "grant_id", help="Only the uses of this grant.")
@click.option("--verifier", help="Only requests from this participant.")
@click.option("--refused", is_flag=True, help="Only refused attempts.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_uses(grant_id: str | None, verifier: str | None, refused: bool, limit: int, as_json: bool) -> None:
    """Verification requests that presented an authorisation, newest first: used, or refused with the fault."""
    with store(load_settings()) as session:
        query = select(GrantUse).order_by(GrantUse.id.desc()).limit(limit)
        if grant_id:
            query = query.where(GrantUse.grant_id == grant_id)
        if verifier:
            query = query.where(GrantUse.verifier_id == verifier.upper())
        if refused:
            query = query.where(GrantUse.outcome == "refused")
        rows = [
            {
                "at": _at(use.at),
                "grant": use.grant_id,
                "account": use.account_id,
                "verifier": use.verifier_id,
                "facts": use.facts,
                "purpose": use.purpose,
                "outcome": use.outcome,
                "fault": use.fault_code,
                "message_id": use.message_id,
            }
            for use in session.scalars(query)
        ]
    _print(rows, as_json, "{at} {outcome:<7} {fault} {verifier} grant {grant} {facts} ({purpose})", "use(s)")
