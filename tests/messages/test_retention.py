"""The retention purge (SQLite and PostgreSQL): only finished deliveries' old envelopes go, metadata and
digests stay, each purge is in the audit log, and the log still verifies."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.clock import FixedClock
from gateway.errors import PayloadPurged
from gateway.messages.models import Delivery, DeliveryStatus, Message
from gateway.messages.retention import PayloadRetention
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app
from tests.conftest import EDUCATION_DEPARTMENT, Signer
from tests.mailbox.helpers import SENDER, acknowledge_request, ask, delivered_ids, fetch_request, send_to_pull_recipient
from tests.messages.conftest import run_cli

RETENTION_DAYS = 30


@dataclass(frozen=True)
class Scene:
    acknowledged: str
    fetched: str  # fetched, not acknowledged: still on its way
    dead_lettered: str
    queued: str  # waiting in the mailbox
    recent: str  # delivered, but younger than the retention period at purge time
    plumbing: tuple[str, ...]  # the recipient's own fetch and acknowledge requests: nothing to deliver


def fetch_one(client: FlaskClient, sign: Signer) -> str:
    [fetched] = delivered_ids(ask(client, sign, fetch_request(1), EDUCATION_DEPARTMENT))
    return fetched


def build_scene(app: Flask, sign: Signer) -> Scene:
    client = app.test_client()
    acknowledged = send_to_pull_recipient(client, sign)
    assert fetch_one(client, sign) == acknowledged
    ask(client, sign, acknowledge_request((acknowledged, SENDER)), EDUCATION_DEPARTMENT)
    fetched = send_to_pull_recipient(client, sign)
    assert fetch_one(client, sign) == fetched
    dead_lettered, queued, recent = (send_to_pull_recipient(client, sign) for _ in range(3))
    context = app.extensions["gateway"]
    with transaction(context.sessions) as session:
        pks = {mid: pk for mid, pk in session.execute(select(Message.message_id, Message.id))}
        session.execute(update(Delivery).where(Delivery.message_pk == pks[dead_lettered]).values(status="failed"))
        session.execute(update(Delivery).where(Delivery.message_pk == pks[recent]).values(status="delivered"))
        young = context.clock.now() + timedelta(days=RETENTION_DAYS - 5)
        session.execute(update(Message).where(Message.id == pks[recent]).values(received_at=young))
        plumbing = tuple(session.scalars(select(Message.message_id).where(Message.sender_id == EDUCATION_DEPARTMENT)))
    assert len(plumbing) == 3
    return Scene(acknowledged, fetched, dead_lettered, queued, recent, plumbing)


def snapshot(app: Flask) -> dict[str, Message]:
    with transaction(app.extensions["gateway"].sessions) as session:
        return {m.message_id: m for m in session.scalars(select(Message))}


def purged_entries(app: Flask) -> list[dict[str, object]]:
    with transaction(app.extensions["gateway"].sessions) as session:
        found = session.scalars(
            select(AuditEntry).where(AuditEntry.kind == "payload.purged").order_by(AuditEntry.leaf_index)
        )
        return [{"message_id": e.message_id, **decode(e.entry)} for e in found]


def retention_later(app: Flask, days: int = RETENTION_DAYS + 1, **options: object) -> PayloadRetention:
    context = app.extensions["gateway"]
    later = FixedClock(context.clock.now() + timedelta(days=days))
    return PayloadRetention(context.sessions, later, RETENTION_DAYS, **options)  # type: ignore[arg-type]


def test_only_old_finished_payloads_are_purged_and_the_log_still_verifies(
    store_app: Flask, sign: Signer, store_settings: Settings
) -> None:
    scene = build_scene(store_app, sign)
    context = store_app.extensions["gateway"]
    assert context.sequencer.run_once() > 0  # a checkpoint over the log before the purge
    before = snapshot(store_app)

    retention = retention_later(store_app)
    expected = {scene.acknowledged, scene.dead_lettered, *scene.plumbing}
    assert retention.candidates().count == len(expected)
    assert retention.purge() == len(expected)

    after = snapshot(store_app)
    purged = {mid for mid, m in after.items() if m.payload_purged_at is not None}
    assert purged == expected
    for message_id, message in after.items():
        was = before[message_id]
        # Metadata, digests and the receipt stay, purged or not.
        assert (message.body_sha256, message.signature_sha256, message.certificate_sha256, message.receipt) == (
            was.body_sha256,
            was.signature_sha256,
            was.certificate_sha256,
            was.receipt,
        )
        if message_id in expected:
            assert message.sealed_envelope is None and message.envelope_key_id is None
            with pytest.raises(PayloadPurged, match=f"message {message_id} from .* was purged"):
                context.payloads.open_envelope(message)
        else:
            assert context.payloads.open_envelope(message) == context.payloads.open_envelope(was)
    entries = purged_entries(store_app)
    assert sorted(str(e["message_id"]) for e in entries) == sorted(expected)
    assert {(e["kind"], e["reason"], e["retention_days"]) for e in entries} == {("payload.purged", "retention", 30)}
    assert {e["sender"] for e in entries if e["message_id"] in (scene.acknowledged, scene.dead_lettered)} == {SENDER}

    # Nothing more to purge; no second entry for the same message.
    assert retention.purge() == 0 and len(purged_entries(store_app)) == len(expected)
    assert context.sequencer.run_once() > 0
    result = run_cli(store_settings, "audit", "verify", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.splitlines()[-1])
    assert report["ok"] is True and report["checkpoints"] == 2 and report["problems"] == []


def test_nothing_is_purged_within_the_period_or_with_retention_off(store_app: Flask, sign: Signer) -> None:
    build_scene(store_app, sign)
    assert retention_later(store_app, days=RETENTION_DAYS - 1).purge() == 0
    context = store_app.extensions["gateway"]
    off = PayloadRetention(context.sessions, FixedClock(context.clock.now() + timedelta(days=3650)), 0)
    assert not off.enabled and off.purge() == 0 and off.run_once() == 0
    assert all(m.payload_purged_at is None for m in snapshot(store_app).values())


def test_concurrent_purges_purge_and_record_each_message_once(store_app: Flask, sign: Signer) -> None:
    scene = build_scene(store_app, sign)
    purgers = [retention_later(store_app, batch=1) for _ in range(3)]
    counts: list[int] = []
    threads = [threading.Thread(target=lambda p=p: counts.append(p.purge())) for p in purgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    expected = {scene.acknowledged, scene.dead_lettered, *scene.plumbing}
    assert sum(counts) == len(expected)
    assert sorted(str(e["message_id"]) for e in purged_entries(store_app)) == sorted(expected)


def test_the_workers_sweep_purges_in_bounded_runs(store_settings: Settings, sign: Signer) -> None:
    app = create_app(store_settings.with_overrides(payload_retention_days=RETENTION_DAYS))
    try:
        scene = build_scene(app, sign)
        context = app.extensions["gateway"]
        assert context.retention.run_once in context.periodic_tasks()
        later = context.clock.now() + timedelta(days=RETENTION_DAYS + 1)
        context.retention.clock = FixedClock(later)
        context.retention.batch, context.retention.batches_per_run = 2, 1
        assert context.retention.run_once() == 2
        assert context.retention.run_once() == 0  # at most once a minute
        context.retention.every = timedelta(0)
        total = 2
        while done := context.retention.run_once():
            total += done
        assert total == len({scene.acknowledged, scene.dead_lettered, *scene.plumbing})
    finally:
        app.extensions["gateway"].engine.dispose()


def test_the_purge_command_dry_run_then_purge_then_verify(
    store_app: Flask, sign: Signer, store_settings: Settings
) -> None:
    scene = build_scene(store_app, sign)
    context = store_app.extensions["gateway"]
    # Make the messages old in real time (the command uses the system clock).
    with transaction(context.sessions) as session:
        for message in session.scalars(select(Message)):
            message.received_at -= timedelta(days=RETENTION_DAYS + 2)
    context.sequencer.run_once()
    retention = {"GATEWAY_PAYLOAD_RETENTION_DAYS": str(RETENTION_DAYS)}
    off = run_cli(store_settings, "payloads", "purge")
    assert off.exit_code == 1 and "retention is off" in off.output
    # The recent message is still a week young; the pending ones are old but on their way.
    expected = {scene.acknowledged, scene.dead_lettered, *scene.plumbing}
    dry = run_cli(store_settings, "payloads", "purge", "--dry-run", **retention)
    assert dry.exit_code == 0, dry.output
    assert f"{len(expected)} envelopes received" in dry.output and "would be purged" in dry.output
    assert all(m.payload_purged_at is None for m in snapshot(store_app).values())
    done = run_cli(store_settings, "payloads", "purge", **retention)
    assert done.exit_code == 0, done.output
    assert f"{len(expected)} envelopes purged" in done.output
    assert {mid for mid, m in snapshot(store_app).items() if m.payload_purged_at is not None} == expected
    status = json.loads(run_cli(store_settings, "payloads", "status", "--json", **retention).output)
    assert (status["purged"], status["purgeable_now"], status["retention_days"]) == (len(expected), 0, 30)
    context.sequencer.run_once()
    verify = run_cli(store_settings, "audit", "verify")
    assert verify.exit_code == 0 and "OK" in verify.output, verify.output

    # A purged dead letter cannot be retried: there is nothing left to deliver.
    with transaction(context.sessions) as session:
        dead = session.scalars(select(Delivery.id).join(Message).where(Message.message_id == scene.dead_lettered)).one()
        assert session.get(Delivery, dead).status == DeliveryStatus.FAILED  # type: ignore[union-attr]
    retry = run_cli(store_settings, "deliveries", "retry", str(dead))
    assert retry.exit_code == 1 and "was purged" in retry.output
