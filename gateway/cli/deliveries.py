"""``gateway deliveries list|show|retry|dead-letters``: where every accepted message is."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.cli.common import clock, load_settings, store
from gateway.delivery import outbox
from gateway.errors import PayloadPurged
from gateway.messages.models import Delivery, DeliveryStatus, Message


def _row(delivery: Delivery, message: Message) -> dict[str, Any]:
    def at(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "delivery": delivery.id,
        "message_id": message.message_id,
        "service": message.service,
        "sender": message.sender_id,
        "recipient": delivery.recipient_id,
        "mode": delivery.mode,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "accepted_at": at(message.received_at),
        "queued_at": at(delivery.enqueued_at),
        "claimed_at": at(delivery.claimed_at),
        "next_attempt_at": at(delivery.next_attempt_at),
        "delivered_at": at(delivery.delivered_at),
        "last_error": delivery.last_error,
    }


def _query(session: Session, status: str | None, recipient: str | None, limit: int) -> list[dict[str, Any]]:
    query = select(Delivery, Message).join(Message, Message.id == Delivery.message_pk).order_by(Delivery.id.desc())
    if status:
        query = query.where(Delivery.status == status)
    if recipient:
        query = query.where(Delivery.recipient_id == recipient.upper())
    return [_row(d, m) for d, m in session.execute(query.limit(limit)).all()]


def _print(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        line = (
            f"#{r['delivery']:<6} {r['status']:<18} {r['attempts']:>2}x {r['mode']:<4} {r['message_id']} "
            f"{r['service']:<28} {r['sender']} -> {r['recipient']}"
        )
        click.echo(line + (f"  [{r['last_error'][:80]}]" if r["last_error"] else ""))
    click.echo(f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'}")


@click.group()
def deliveries() -> None:
    """Inspect and retry deliveries (accepted, queued, in_delivery, delivered, waiting_for_retry, failed)."""


@deliveries.command("list")
@click.option("--status", type=click.Choice([s.value for s in DeliveryStatus]), help="Only this status.")
@click.option("--recipient", help="Only to this participant.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(status: str | None, recipient: str | None, limit: int, as_json: bool) -> None:
    """The newest deliveries first."""
    with store(load_settings()) as session:
        _print(_query(session, status, recipient, limit), as_json)


@deliveries.command("dead-letters")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True, help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dead_letters(limit: int, as_json: bool) -> None:
    """Deliveries that failed for good (past the recipient's attempt limit)."""
    with store(load_settings()) as session:
        _print(_query(session, DeliveryStatus.FAILED, None, limit), as_json)


@deliveries.command("show")
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(message_id: str, as_json: bool) -> None:
    """Every delivery of MESSAGE_ID, with its lifecycle."""
    with store(load_settings()) as session:
        query = (
            select(Delivery, Message)
            .join(Message, Message.id == Delivery.message_pk)
            .where(Message.message_id == message_id)
        )
        rows = [_row(d, m) for d, m in session.execute(query).all()]
    if not rows:
        raise click.ClickException(f"no message {message_id}")
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        for key, value in row.items():
            click.echo(f"{key:>16}: {value if value is not None else '-'}")
        click.echo("")


@deliveries.command("retry")
@click.argument("delivery_id", type=int)
def retry(delivery_id: int) -> None:
    """Try DELIVERY_ID again with a fresh attempt count (a dead letter, or one waiting for retry)."""
    with store(load_settings()) as session:
        try:
            delivery = outbox.retry(session, delivery_id, clock.now())
        except PayloadPurged as exc:
            raise click.ClickException(str(exc)) from None
        if delivery is None:
            raise click.ClickException(f"no delivery #{delivery_id}")
        click.echo(
            f"#{delivery.id} is {delivery.status}"
            + ("; the next sweep of a worker sends it" if delivery.mode == "push" else "; back in the mailbox")
        )
