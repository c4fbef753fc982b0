"""``gateway participants add|list|show|update|disable|enable``."""

from __future__ import annotations

import getpass
import json
from typing import Any

import click

from gateway.cli.common import clock, load_settings, store
from gateway.registry.models import DeliveryMode, ParticipantKind
from gateway.registry.services import (
    ParticipantInput,
    add_participant,
    get_participant,
    list_participants,
    participant_as_dict,
    set_enabled,
)
from gateway.registry.updates import ChangedBy, update_participant

YES_NO = click.Choice(["yes", "no"])


@click.group()
def participants() -> None:
    """Register and inspect participants (the organisations that exchange messages)."""


@participants.command("add")
@click.argument("participant_id")
@click.option("--name", required=True, help="The organisation's registered name.")
@click.option(
    "--kind", required=True, type=click.Choice([k.value for k in ParticipantKind]), help="What kind of organisation."
)
@click.option("--region", required=True, help="GB/T 2260 region code where it sits, e.g. 110105.")
@click.option("--unit-nature", help="Employers only: unit nature code, e.g. 31 (state-owned enterprise).")
@click.option("--serves", "regions_served", multiple=True, help="A region it is responsible for (repeatable).")
@click.option(
    "--delivery",
    "delivery_mode",
    type=click.Choice([m.value for m in DeliveryMode]),
    default="pull",
    show_default=True,
    help="push: the gateway calls --endpoint; pull: the participant fetches from its mailbox.",
)
@click.option("--endpoint", "endpoint_url", help="Push delivery: the participant's SOAP endpoint URL.")
@click.option(
    "--push-timeout",
    "push_timeout",
    type=int,
    default=10,
    show_default=True,
    help="Push delivery: seconds to wait for the recipient's acknowledgement.",
)
@click.option(
    "--max-attempts",
    "max_attempts",
    type=int,
    default=8,
    show_default=True,
    help="Delivery attempts before a message is dead-lettered.",
)
@click.option(
    "--archive-rights",
    type=YES_NO,
    help="Employers that keep archives (state organs, public institutions, SOEs): holds archive management rights?",
)
@click.option("--archive-agency", help="Employers without archive rights: the talent service agency keeping its files.")
@click.option("--contact-name", help="Published in the directory: the office or person to contact.")
@click.option("--contact-phone", help="Published in the directory, e.g. 010-65090001.")
@click.option("--contact-email", help="Published in the directory, e.g. office@example.cn.")
@click.option("--contact-address", help="Published in the directory: the postal address.")
@click.option("--opening-hours", help="Published in the directory, e.g. 周一至周五 9:00-17:00.")
def add(participant_id: str, push_timeout: int, max_attempts: int, **options: str | tuple[str, ...] | None) -> None:
    """Register PARTICIPANT_ID (its unified social credit code)."""
    data = ParticipantInput(
        id=participant_id,
        name=str(options["name"]),
        kind=str(options["kind"]),
        region=str(options["region"]),
        unit_nature=_text(options["unit_nature"]),
        regions_served=tuple(options["regions_served"] or ()),
        delivery_mode=str(options["delivery_mode"]),
        endpoint_url=_text(options["endpoint_url"]),
        contact_name=_text(options["contact_name"]),
        contact_phone=_text(options["contact_phone"]),
        contact_email=_text(options["contact_email"]),
        contact_address=_text(options["contact_address"]),
        opening_hours=_text(options["opening_hours"]),
        push_timeout_seconds=push_timeout,
        max_delivery_attempts=max_attempts,
        archive_rights=None if options["archive_rights"] is None else options["archive_rights"] == "yes",
        archive_agency_id=_text(options["archive_agency"]),
    )
    with store(load_settings()) as session:
        participant = add_participant(session, data, clock.now())
        click.echo(f"registered {participant.id} {participant.name} ({participant.kind})")


def _text(value: str | tuple[str, ...] | None) -> str | None:
    return value if isinstance(value, str) and value else None


@participants.command("list")
@click.option("--kind", type=click.Choice([k.value for k in ParticipantKind]), help="Only this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(kind: str | None, as_json: bool) -> None:
    """List registered participants."""
    with store(load_settings()) as session:
        found = list_participants(session, kind)
        if as_json:
            click.echo(json.dumps([participant_as_dict(p) for p in found], ensure_ascii=False, indent=2))
            return
        for p in found:
            state = "enabled" if p.enabled else "DISABLED"
            click.echo(f"{p.id}  {p.kind:<30} {p.region}  {p.delivery_mode:<4}  {state:<8}  {p.name}")
        click.echo(f"{len(found)} participant(s)")


@participants.command("show")
@click.argument("participant_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(participant_id: str, as_json: bool) -> None:
    """Show one participant, its regions and certificates."""
    with store(load_settings()) as session:
        data = participant_as_dict(get_participant(session, participant_id))
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    for key, value in data.items():
        if key == "certificates":
            click.echo(f"certificates: {len(value)}")
            for cert in value:
                click.echo(f"  {cert['fingerprint_sha256'][:16]}…  {cert['not_before']} .. {cert['not_after']}")
        else:
            click.echo(f"{key}: {value}")


@participants.command("update")
@click.argument("participant_id")
@click.option("--name", help="The organisation's registered name.")
@click.option("--contact-name", help="Published in the directory: the office or person to contact.")
@click.option("--contact-phone", help="Published in the directory, e.g. 010-65090001.")
@click.option("--contact-email", help="Published in the directory, e.g. office@example.cn.")
@click.option("--contact-address", help="Published in the directory: the postal address.")
@click.option("--opening-hours", help="Published in the directory, e.g. 周一至周五 9:00-17:00.")
@click.option(
    "--serves", "regions_served", multiple=True, help="The regions it serves, replacing the list (repeatable)."
)
@click.option("--endpoint", "endpoint_url", help="Push delivery: the SOAP endpoint URL.")
@click.option(
    "--delivery",
    "delivery_mode",
    type=click.Choice([m.value for m in DeliveryMode]),
    help="push: the gateway calls --endpoint; pull: the participant fetches from its mailbox.",
)
@click.option("--push-timeout", "push_timeout_seconds", type=int, help="Push delivery: seconds to wait.")
@click.option("--max-attempts", "max_delivery_attempts", type=int, help="Delivery attempts before a dead letter.")
@click.option("--unit-nature", help="Employers only: unit nature code.")
@click.option("--archive-rights", type=YES_NO, help="Employers only: holds archive management rights?")
@click.option("--archive-agency", "archive_agency_id", help="Employers without archive rights: their archive agency.")
@click.option("--json", "as_json", is_flag=True, help="Print the entry and the changes as JSON.")
def update(participant_id: str, as_json: bool, **options: Any) -> None:
    """Change PARTICIPANT_ID's entry: only the options given change; an empty text ("") clears one.

    Every change is a participant.updated audit entry (who, which field, old and new value) and is
    published at once in /directory.
    """
    changes = {name: value for name, value in options.items() if value is not None and value != ()}
    if "archive_rights" in changes:
        changes["archive_rights"] = changes["archive_rights"] == "yes"
    if not changes:
        raise click.UsageError(
            "say what to change, e.g. --contact-phone 010-65090001 (gateway participants update --help)"
        )
    with store(load_settings()) as session:
        participant = get_participant(session, participant_id)
        made = update_participant(session, participant, changes, ChangedBy(_operator(), "command line"), clock.now())
        data = participant_as_dict(participant)
    if as_json:
        click.echo(
            json.dumps({"participant": data, "changes": [c.as_dict() for c in made]}, ensure_ascii=False, indent=2)
        )
        return
    for change in made:
        click.echo(
            f"{change.field}: {change.old if change.old is not None else '(none)'} -> "
            f"{change.new if change.new is not None else '(none)'}"
        )
    click.echo(
        f"updated {data['id']} {data['name']}: {len(made)} change(s), each in the audit log"
        if made
        else f"{data['id']} {data['name']}: nothing changed"
    )


def _operator() -> str:
    """The operator's account on this machine, named in the audit entry as who made the change."""
    try:
        return f"operator {getpass.getuser()}"
    except (KeyError, OSError):  # no user name in the environment or the password database
        return "operator"


@participants.command("disable")
@click.argument("participant_id")
def disable(participant_id: str) -> None:
    """Disable a participant: it can neither send nor receive."""
    with store(load_settings()) as session:
        participant = set_enabled(session, participant_id, False, clock.now())
        click.echo(f"disabled {participant.id} {participant.name}")


@participants.command("enable")
@click.argument("participant_id")
def enable(participant_id: str) -> None:
    """Enable a disabled participant again."""
    with store(load_settings()) as session:
        participant = set_enabled(session, participant_id, True, clock.now())
        click.echo(f"enabled {participant.id} {participant.name}")
