"""``gateway payloads status|rotate-key|activate-key|reencrypt|purge``: stored envelopes, their keys and retention."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from sqlalchemy import func, select

from gateway.cli.common import clock, load_settings, store_sessions
from gateway.errors import ConfigurationError, NotFound, PayloadUnavailable
from gateway.messages.keyring import PayloadKeyRing, activate_key, create_key
from gateway.messages.models import Message
from gateway.messages.payloads import PayloadCipher, count_to_reencrypt, reencrypt
from gateway.messages.retention import PayloadRetention
from gateway.settings import Settings


def _ring(settings: Settings) -> PayloadKeyRing:
    try:
        return PayloadKeyRing(settings.payload_keys_dir)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def payloads() -> None:
    """Stored envelopes: encryption at rest (AES-256-GCM), key rotation and the retention purge."""


@payloads.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """The key ring, how many envelopes each key holds, plaintext and purged ones, and retention."""
    settings = load_settings()
    ring = _ring(settings)
    with store_sessions(settings) as sessions, sessions() as session:
        counted = dict(
            session.execute(
                select(Message.envelope_key_id, func.count())
                .where(Message.payload_purged_at.is_(None), Message.sealed_envelope.is_not(None))
                .group_by(Message.envelope_key_id)
            ).all()
        )
        purged = session.scalar(select(func.count()).where(Message.payload_purged_at.is_not(None))) or 0
        retention = PayloadRetention(sessions, clock, settings.payload_retention_days)
        due = retention.candidates().count if retention.enabled else 0
    plaintext = counted.get(None, 0)
    by_key = {key_id: count for key_id, count in counted.items() if key_id is not None}
    current = ring.current.key_id
    keys: dict[str, Any] = {
        key_id: {"envelopes": by_key.get(key_id, 0), "current": key_id == current, "in_key_ring": True}
        for key_id in ring.key_ids()
    }
    for key_id, count in by_key.items():
        if key_id not in keys:
            keys[key_id] = {"envelopes": count, "current": False, "in_key_ring": False}
    report = {
        "key_ring": str(ring.directory),
        "current_key": current,
        "keys": keys,
        "plaintext": plaintext,
        "purged": purged,
        "retention_days": settings.payload_retention_days,
        "purgeable_now": due,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"key ring     {ring.directory}")
    for key_id, facts in keys.items():
        note = " (current)" if facts["current"] else ""
        if not facts["in_key_ring"]:
            note = " MISSING from the key ring: these envelopes cannot be read"
        click.echo(f"  {key_id}  {facts['envelopes']:>9} envelopes{note}")
    hint = ": `gateway payloads reencrypt` seals them" if plaintext else ""
    click.echo(f"plaintext    {plaintext} envelopes stored before encryption{hint}")
    click.echo(f"purged       {purged} envelopes")
    if settings.payload_retention_days:
        click.echo(f"retention    {settings.payload_retention_days} days; {due} envelopes past it can be purged now")
    else:
        click.echo("retention    off (GATEWAY_PAYLOAD_RETENTION_DAYS=0): envelopes are kept")


@payloads.command("rotate-key")
@click.option(
    "--stage",
    is_flag=True,
    help="Add the key without making it current (copy it to every machine, then `activate-key`).",
)
def rotate_key(stage: bool) -> None:
    """Add a new payload key and make it the one that encrypts new envelopes; old keys keep decrypting."""
    settings = load_settings()
    _ring(settings)  # refuse on a missing or malformed key ring before adding to it
    key_id = create_key(settings.payload_keys_dir, clock.now(), activate=not stage)
    path = settings.payload_keys_dir / f"{key_id}.key"
    if stage:
        click.echo(
            f"staged payload key {key_id} ({path}); make it current with `gateway payloads activate-key {key_id}`"
        )
    else:
        click.echo(
            f"payload key {key_id} ({path}) now encrypts new envelopes; running processes follow within a second"
        )
        click.echo("`gateway payloads reencrypt` rewraps older envelopes under it")
    click.echo("back the key ring up now: an envelope whose key is lost cannot be read again")


@payloads.command("activate-key")
@click.argument("key_id")
def activate_key_(key_id: str) -> None:
    """Make the staged (or an older) payload key KEY_ID the one that encrypts new envelopes."""
    settings = load_settings()
    try:
        activate_key(settings.payload_keys_dir, key_id)
    except (NotFound, ConfigurationError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"payload key {key_id} now encrypts new envelopes; running processes follow within a second")


@payloads.command("reencrypt")
@click.option(
    "--batch", type=click.IntRange(1, 10_000), default=500, show_default=True, help="Envelopes per transaction."
)
def reencrypt_(batch: int) -> None:
    """Rewrap every stored envelope under the current key: those under older keys and plaintext ones."""
    settings = load_settings()
    cipher = PayloadCipher(_ring(settings))
    with store_sessions(settings) as sessions:
        with sessions() as session:
            total = count_to_reencrypt(session, cipher)
        try:
            with click.progressbar(length=total, label="rewrapping envelopes", file=sys.stderr) as bar:
                done = reencrypt(sessions, cipher, batch, bar.update)
        except PayloadUnavailable as exc:
            raise click.ClickException(f"stopped (batches before this one are committed): {exc}") from None
    click.echo(f"{done} envelopes rewrapped under payload key {cipher.ring.current.key_id}")


@payloads.command("purge")
@click.option("--dry-run", is_flag=True, help="Only say how many envelopes would be purged.")
def purge(dry_run: bool) -> None:
    """Erase the envelopes of messages older than GATEWAY_PAYLOAD_RETENTION_DAYS whose deliveries are finished.

    Metadata, digests, receipts and the audit log stay (each purge is recorded in it); workers
    also purge in their periodic sweep.
    """
    settings = load_settings()
    if not settings.payload_retention_days:
        raise click.ClickException("retention is off: set GATEWAY_PAYLOAD_RETENTION_DAYS to the days to keep payloads")
    with store_sessions(settings) as sessions:
        retention = PayloadRetention(sessions, clock, settings.payload_retention_days)
        found = retention.candidates()
        span = f" received {found.oldest:%Y-%m-%d} to {found.newest:%Y-%m-%d}" if found.oldest and found.newest else ""
        if dry_run:
            click.echo(
                f"{found.count} envelopes{span} would be purged (older than {retention.cutoff():%Y-%m-%d %H:%M} UTC)"
            )
            return
        with click.progressbar(length=found.count, label="purging envelopes", file=sys.stderr) as bar:
            purged = retention.purge(bar.update)
    click.echo(f"{purged} envelopes purged; their metadata, digests, receipts and audit entries remain")
