"""The gauges read from the store at scrape time: deliveries, the audit log, grants, archives, CRLs.

They describe the whole gateway, not one process: every node reports the same values from the
shared database, so dashboards and alerts take ``max()`` over nodes. One scrape is eight small
queries (about 5 ms with 300 messages on SQLite); the counts by delivery state and the sum of
attempts read the whole deliveries table, so their cost grows with it (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from gateway.archives.models import ArchiveTransfer, TransferStatus
from gateway.audit.models import AuditCheckpoint, AuditEntry, AuditLogState
from gateway.grants.models import GrantUse
from gateway.messages.models import Delivery, DeliveryStatus
from gateway.web.context import Gateway

# Deliveries still on their way: waiting for the broker, in the queue or mailbox, being tried, or
# waiting for their next attempt.
UNFINISHED = (
    DeliveryStatus.ACCEPTED,
    DeliveryStatus.QUEUED,
    DeliveryStatus.IN_DELIVERY,
    DeliveryStatus.WAITING_FOR_RETRY,
)


class StoreCollector(Collector):
    """A prometheus-client collector over one gateway's store (and its trust store's CRLs)."""

    def __init__(self, context: Gateway) -> None:
        self._context = context

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._context.clock.now()
        with self._context.sessions() as session:
            yield from _deliveries(session, now)
            yield from _audit_log(session, now)
            yield from _grants(session)
            yield from _archives(session, now)
        yield from _revocation_lists(self._context, now)


def _deliveries(session: Session, now: datetime) -> Iterator[GaugeMetricFamily]:
    by_state = GaugeMetricFamily("gateway_deliveries", "Deliveries by state.", labels=["state"])
    counts = dict(session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
    for state in DeliveryStatus:
        by_state.add_metric([state.value], counts.get(state.value, 0))
    yield by_state
    yield GaugeMetricFamily(
        "gateway_dead_letters",
        "Deliveries that failed for good (dead letters), until retried by an operator.",
        value=counts.get(DeliveryStatus.FAILED.value, 0),
    )
    attempts = session.scalar(select(func.coalesce(func.sum(Delivery.attempts), 0)))
    yield GaugeMetricFamily(
        "gateway_delivery_attempts", "Push attempts made by the stored deliveries, all together.", value=attempts or 0
    )
    depth = GaugeMetricFamily(
        "gateway_delivery_queue_depth", "Deliveries not yet delivered, per recipient.", labels=["recipient"]
    )
    oldest = GaugeMetricFamily(
        "gateway_delivery_oldest_age_seconds",
        "Age of the oldest delivery not yet delivered, per recipient.",
        labels=["recipient"],
    )
    rows = session.execute(
        select(Delivery.recipient_id, func.count(), func.min(Delivery.created_at))
        .where(Delivery.status.in_([s.value for s in UNFINISHED]))
        .group_by(Delivery.recipient_id)
    )
    for recipient, count, first in rows:
        depth.add_metric([recipient], count)
        oldest.add_metric([recipient], _age(now, first))
    yield depth
    yield oldest


def _audit_log(session: Session, now: datetime) -> Iterator[GaugeMetricFamily]:
    state = session.get(AuditLogState, 1)
    size, integrated = (state.size, state.integrated) if state is not None else (0, 0)
    yield GaugeMetricFamily("gateway_audit_log_size", "Entries in the audit log.", value=size)
    yield GaugeMetricFamily(
        "gateway_audit_entries_not_integrated",
        "Audit entries written but not yet integrated into the log's tree by the sequencer.",
        value=max(size - integrated, 0),
    )
    first_waiting = None
    if size > integrated:
        first_waiting = session.scalar(
            select(AuditEntry.at).where(AuditEntry.leaf_index >= integrated).order_by(AuditEntry.leaf_index).limit(1)
        )
    yield GaugeMetricFamily(
        "gateway_audit_integration_lag_seconds",
        "How long the oldest entry not yet integrated has waited (0: none waits).",
        value=_age(now, first_waiting) if first_waiting is not None else 0.0,
    )
    latest = session.scalar(select(AuditCheckpoint.at).order_by(AuditCheckpoint.id.desc()).limit(1))
    checkpoint_age = GaugeMetricFamily(
        "gateway_audit_checkpoint_age_seconds", "Age of the latest signed checkpoint (absent: none yet)."
    )
    if latest is not None:
        checkpoint_age.add_metric([], _age(now, latest))
    yield checkpoint_age


def _grants(session: Session) -> Iterator[GaugeMetricFamily]:
    uses = GaugeMetricFamily(
        "gateway_grant_uses", "Uses of graduates' authorisations by outcome (used, refused).", labels=["outcome"]
    )
    counts = dict(session.execute(select(GrantUse.outcome, func.count()).group_by(GrantUse.outcome)).all())
    for outcome in ("used", "refused"):
        uses.add_metric([outcome], counts.get(outcome, 0))
    yield uses


def _archives(session: Session, now: datetime) -> Iterator[GaugeMetricFamily]:
    overdue = GaugeMetricFamily(
        "gateway_archives_overdue",
        "Archive transfers past their limit: not dispatched in time, or dispatched and no receipt in time.",
        labels=["waiting_for"],
    )
    for waiting_for, status, due in (
        ("dispatch", TransferStatus.REQUESTED, ArchiveTransfer.dispatch_due_at),
        ("receipt", TransferStatus.DISPATCHED, ArchiveTransfer.receipt_due_at),
    ):
        count = session.scalar(
            select(func.count()).select_from(ArchiveTransfer).where(and_(ArchiveTransfer.status == status, due < now))
        )
        overdue.add_metric([waiting_for], count or 0)
    yield overdue


def _revocation_lists(context: Gateway, now: datetime) -> Iterator[GaugeMetricFamily]:
    remaining = GaugeMetricFamily(
        "gateway_crl_next_update_seconds",
        "Seconds until each loaded CRL's nextUpdate (negative: expired; messages are then refused).",
        labels=["file"],
    )
    for path, next_update in context.trust.crl_next_updates().items():
        remaining.add_metric([str(path)], (next_update - now).total_seconds())
    yield remaining


def _age(now: datetime, then: datetime) -> float:
    return max((now - then).total_seconds(), 0.0)
