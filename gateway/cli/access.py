"""``gateway access rules|list|grant|deny|remove``: the access-rights matrix and its overrides."""

from __future__ import annotations

import json

import click

from gateway.access.rules import load_rules
from gateway.access.services import add_override, list_overrides, remove_override
from gateway.cli.common import clock, load_settings, store
from gateway.intake.catalog import ServiceCatalog


@click.group()
def access() -> None:
    """Who may send which service to whom: the matrix (schemas/access-rights.csv) and overrides."""


@access.command("rules")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rules(as_json: bool) -> None:
    """Show the access-rights matrix."""
    matrix = load_rules()
    if as_json:
        rows = [
            {
                "rule": r.rule,
                "service": r.service,
                "sender_kinds": sorted(r.sender_kinds),
                "recipient_kinds": sorted(r.recipient_kinds),
                "condition": r.condition,
                "description": r.description,
            }
            for r in matrix
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in matrix:
        click.echo(
            f"{r.rule:<8} {r.service:<28} {'|'.join(sorted(r.sender_kinds))} -> "
            f"{'|'.join(sorted(r.recipient_kinds))} [{r.condition}]"
        )


@access.command("list")
@click.option("--participant", help="Only this participant's overrides.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(participant: str | None, as_json: bool) -> None:
    """List the per-participant overrides."""
    with store(load_settings()) as session:
        found = list_overrides(session, participant)
        rows = [
            {
                "id": o.id,
                "participant": o.participant_id,
                "service": o.service,
                "to": o.counterpart_id,
                "effect": o.effect,
                "reason": o.reason,
                "created_at": o.created_at.isoformat(),
            }
            for o in found
        ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(
            f"#{row['id']:<4} {row['effect']:<5} {row['participant']} {row['service']} -> {row['to'] or 'anyone'}: "
            f"{row['reason']}"
        )
    click.echo(f"{len(rows)} override(s)")


def _override(effect: str, participant_id: str, service: str, to: str | None, reason: str) -> None:
    settings = load_settings()
    services = {s.name for s in ServiceCatalog(settings.schemas_dir).services}
    with store(settings) as session:
        override = add_override(
            session, load_rules(), services, participant_id, service, effect, reason, clock.now(), to
        )
        click.echo(
            f"#{override.id}: {effect} {override.participant_id} sending {service} "
            f"to {override.counterpart_id or 'anyone'}"
        )


@access.command("grant")
@click.argument("participant_id")
@click.argument("service")
@click.option("--to", "to", help="Only to this recipient (default: anyone).")
@click.option("--reason", required=True, help="Why; shown in audit and refusals.")
def grant(participant_id: str, service: str, to: str | None, reason: str) -> None:
    """Let PARTICIPANT_ID send SERVICE (or * for all) even where the matrix does not."""
    _override("grant", participant_id, service, to, reason)


@access.command("deny")
@click.argument("participant_id")
@click.argument("service")
@click.option("--to", "to", help="Only to this recipient (default: anyone).")
@click.option("--reason", required=True, help="Why; named in every refusal it causes.")
def deny(participant_id: str, service: str, to: str | None, reason: str) -> None:
    """Stop PARTICIPANT_ID sending SERVICE (or * for all); beats the matrix and every grant."""
    _override("deny", participant_id, service, to, reason)


@access.command("remove")
@click.argument("override_id", type=int)
def remove(override_id: int) -> None:
    """Remove override OVERRIDE_ID (see `gateway access list`)."""
    with store(load_settings()) as session:
        removed = remove_override(session, override_id, clock.now())
        click.echo(f"removed #{removed.id} ({removed.effect} {removed.participant_id} {removed.service})")
