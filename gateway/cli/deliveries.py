"""``gateway deliveries list|show|retry|dead-letters``: where every accepted message is."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.cli.common import clock, load_settings, store
from gateway.delivery import outbox
from gateway.delivery.broker import make_broker, send_batch
from gateway.delivery.service import delivery_actor
from gateway.errors import PayloadPurged
from gateway.messages.models import Delivery, DeliveryStatus, Message
from gateway.settings import EMBEDDED_BROKER


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
@click.argument("delivery_id", type=int, required=False)
@click.option("--all", "retry_all", is_flag=True, help="Every dead letter (failed delivery), in one transaction.")
@click.option("--recipient", help="With --all: only dead letters to this participant.")
@click.option(
    "--since",
    metavar="WHEN",
    help="With --all: only those dead-lettered since WHEN (2026-12-01, 2026-12-01T08:00:00Z, or 30m, 2h, 7d ago).",
)
@click.option("--json", "as_json", is_flag=True, help="With --all: print the outcome as JSON.")
def retry(delivery_id: int | None, retry_all: bool, recipient: str | None, since: str | None, as_json: bool) -> None:
    """Try DELIVERY_ID again with a fresh attempt count (a dead letter, or one waiting for retry),
    or, with --all, every dead letter at once."""
    if retry_all == (delivery_id is not None):
        raise click.UsageError("give either DELIVERY_ID or --all")
    if not retry_all and (recipient or since or as_json):
        raise click.UsageError("--recipient, --since and --json go with --all")
    if retry_all:
        _retry_all(recipient.upper() if recipient else None, _since(since) if since else None, as_json)
        return
    assert delivery_id is not None
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


ENQUEUE_BATCH = 1000


def _retry_all(recipient: str | None, since: datetime | None, as_json: bool) -> None:
    """One transaction marks every matching dead letter; then, on Redis, their broker messages go
    out in batches of ENQUEUE_BATCH (each one round trip). The embedded broker lives inside
    ``gateway serve``: there the next sweep sends them."""
    settings = load_settings()
    started = time.perf_counter()
    now = clock.now()
    enqueue_now = settings.broker_url != EMBEDDED_BROKER  # the in-process broker lives in `gateway serve`
    with store(settings) as session:
        done = outbox.retry_dead_letters(session, now, recipient=recipient, since=since, enqueue_now=enqueue_now)
    push_ids = done.push_ids
    retried = len(push_ids) + done.pull
    if not as_json:
        click.echo(
            f"{retried} dead letter{'' if retried == 1 else 's'} retried with a fresh attempt count: "
            f"{len(push_ids)} push, {done.pull} pull (back in their mailboxes)"
            + (f"; {done.purged} left failed: their envelopes were purged" if done.purged else "")
        )
    sent, broker_error = 0, None
    if enqueue_now and push_ids:
        actor = delivery_actor(make_broker(settings), _sent_from_here)
        try:
            for start in range(0, len(push_ids), ENQUEUE_BATCH):
                batch = push_ids[start : start + ENQUEUE_BATCH]
                send_batch(actor, batch, now, done.recipients)
                sent += len(batch)
                if not as_json:
                    click.echo(f"  queued {sent}/{len(push_ids)} on the broker")
        except Exception as exc:  # the broker is down: the sweep sends what is left once it is back
            broker_error = f"the broker failed after {sent} of {len(push_ids)}: {type(exc).__name__}: {exc}"
            click.echo(f"  {broker_error}; the workers' sweep sends the rest after the grace period", err=True)
        finally:
            actor.broker.close()
    elif push_ids and not as_json:
        click.echo("  the next sweep of `gateway serve` sends the push deliveries (embedded broker)")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "retried": retried,
                    "push": len(push_ids),
                    "pull": done.pull,
                    "queued_on_broker": sent,
                    "left_to_the_sweep": len(push_ids) - sent,
                    "skipped_purged": done.purged,
                    "broker_error": broker_error,
                    "seconds": round(time.perf_counter() - started, 3),
                },
                indent=2,
            )
        )


def _sent_from_here(_delivery_id: int, _recipient_id: str | None = None) -> None:
    raise RuntimeError("gateway deliveries retry only sends; workers deliver")


_RELATIVE = re.compile(r"^(\d+)([mhd])$")


def _since(text: str) -> datetime:
    found = _RELATIVE.match(text.strip())
    if found:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[found.group(2)]
        return clock.now() - timedelta(**{unit: int(found.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a date, a date and time, nor 30m / 2h / 7d", param_hint="--since"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
