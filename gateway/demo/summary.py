"""The end-of-season summary, read from the gateway's database (never from the demo's own counters).

Messages per service with their deliveries (or, for verification requests, the gateway's own
answers), deliveries by status, refusals by fault code (the ``message.refused`` audit entries),
overdue archives at a given date (the archive clock of ``gateway.archives.deadlines``), the
domain's records, the graduates' accounts and grants, every use of a grant by outcome and fault
code (``grant_uses``), the verification answers and the facts they disclosed, the agreement
answers the platform sent on from the portal, and the audit log verified from scratch
(``gateway.audit.verify.verify_log``, what ``gateway audit verify`` runs). Only the accounts to
sign in with (``gateway.demo.accounts``) come from the demo itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.agreements.models import Agreement
from gateway.archives.deadlines import Limits, overdue
from gateway.archives.models import ArchiveTransfer, TransferStatus
from gateway.audit.checkpoint import checkpoint_public_key
from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.audit.verify import verify_log
from gateway.bootstrap import gateway_key_paths
from gateway.clock import end_of_day
from gateway.demo.accounts import SignIns
from gateway.graduates.models import GraduateAccount
from gateway.grants.models import Grant, GrantUse
from gateway.grants.scope import FACTS, state_of
from gateway.intake.catalog import ServiceCatalog
from gateway.messages.models import Delivery, DeliveryStatus, Message
from gateway.registrations.models import Registration
from gateway.registry.models import Participant
from gateway.settings import Settings


@dataclass(frozen=True)
class ServiceLine:
    service: str
    plumbing: bool
    accepted: int
    delivered: int
    pending: int
    answered: int = 0  # answered by the gateway itself (a verification request is delivered to nobody)


@dataclass(frozen=True)
class RefusalLine:
    code: str
    count: int
    services: tuple[str, ...]
    senders: tuple[str, ...]


@dataclass(frozen=True)
class OverdueLine:
    transfer_number: str
    holder: str
    receiver: str
    what: str
    days: int


@dataclass(frozen=True)
class Page:
    label: str
    url: str
    available: bool


@dataclass
class Summary:
    graduates: int
    seed: int
    base_url: str
    services: list[ServiceLine] = field(default_factory=list)
    deliveries: dict[str, int] = field(default_factory=dict)
    refused: list[RefusalLine] = field(default_factory=list)
    planned_refusals: dict[str, int] = field(default_factory=dict)
    overdue_on: str = ""  # the day judged (YYYY-MM-DD), at its end in Beijing time
    overdue_at: str = ""  # that instant
    overdue: list[OverdueLine] = field(default_factory=list)
    extended_for_late_leavers: int = 0  # open transfers overdue but for the late leavers' extension
    registrations: dict[str, int] = field(default_factory=dict)
    agreements: dict[str, int] = field(default_factory=dict)
    transfers: dict[str, int] = field(default_factory=dict)
    audit_entries: int = 0
    audit_checkpoints: int = 0
    audit_problems: list[str] = field(default_factory=list)
    graduate_accounts: int = 0
    grants: dict[str, int] = field(default_factory=dict)  # by state now: active, exhausted, revoked ...
    grant_uses: dict[str, int] = field(default_factory=dict)  # by outcome: used, refused
    grant_refusals: dict[str, int] = field(default_factory=dict)  # refused uses by fault code
    verification_answers: dict[str, int] = field(default_factory=dict)  # by the verifier's kind
    facts_disclosed: dict[str, int] = field(default_factory=dict)  # by fact, over every answer
    portal_answers: dict[str, int] = field(default_factory=dict)  # the platform's AgreementResponses, by recipient kind
    pages: list[Page] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # participant id -> name
    sign_ins: SignIns | None = None
    season_error: str | None = None

    @property
    def refused_by_code(self) -> dict[str, int]:
        return {line.code: line.count for line in self.refused}

    @property
    def all_delivered(self) -> bool:
        return set(self.deliveries) <= {DeliveryStatus.DELIVERED}

    @property
    def audit_ok(self) -> bool:
        return self.audit_entries > 0 and not self.audit_problems

    @property
    def ok(self) -> bool:
        """The season played through, everything was delivered, only the planned refusals, the log verifies."""
        return (
            self.season_error is None
            and self.all_delivered
            and self.refused_by_code == self.planned_refusals
            and self.audit_ok
        )

    def as_json(self) -> dict[str, Any]:
        """Everything but the passwords (the credentials file has them)."""
        data = asdict(self)
        if data["sign_ins"] is not None:
            data["sign_ins"].pop("auditor_password")
        data.update(
            refused_by_code=self.refused_by_code, all_delivered=self.all_delivered, audit_ok=self.audit_ok, ok=self.ok
        )
        return data


def read_summary(session: Session, settings: Settings, summary: Summary, now: datetime, overdue_on: date) -> None:
    """Fill ``summary`` from the database in ``session``: grants in their state at ``now``, archives
    overdue on the day ``overdue_on`` (at its end in Beijing time, as ``gateway archives overdue --at``)."""
    overdue_at = end_of_day(overdue_on)
    plumbing = {s.name for s in ServiceCatalog(settings.schemas_dir).services if s.is_plumbing}
    accepted = dict(session.execute(select(Message.service, func.count()).group_by(Message.service)).all())
    delivered: Counter[str] = Counter()
    pending: Counter[str] = Counter()
    rows = session.execute(
        select(Message.service, Delivery.status, func.count())
        .join(Delivery, Delivery.message_pk == Message.id)
        .group_by(Message.service, Delivery.status)
    ).all()
    for service, status, count in rows:
        (delivered if status == DeliveryStatus.DELIVERED else pending)[service] += count
    answered = dict(
        session.execute(
            select(Message.service, func.count())
            .join(GrantUse, GrantUse.message_pk == Message.id)
            .where(GrantUse.outcome == "used")
            .group_by(Message.service)
        ).all()
    )
    summary.services = sorted(
        (ServiceLine(s, s in plumbing, n, delivered[s], pending[s], answered.get(s, 0)) for s, n in accepted.items()),
        key=lambda line: (line.plumbing, line.service),
    )
    summary.deliveries = _grouped(session, Delivery.status)
    summary.refused = _refusals(session)
    transfers = list(session.scalars(select(ArchiveTransfer)))
    summary.overdue_on = overdue_on.isoformat()
    summary.overdue_at = overdue_at.isoformat(timespec="seconds")
    summary.overdue = [
        OverdueLine(o.transfer_number, o.holder_id, o.receiver_id, o.what, o.days)
        for o in overdue(transfers, overdue_at)
    ]
    summary.extended_for_late_leavers = _extended(transfers, overdue_at, Limits.from_settings(settings))
    summary.names = {p.id: p.name for p in session.scalars(select(Participant))}
    summary.registrations = _grouped(session, Registration.status)
    summary.agreements = _grouped(session, Agreement.state)
    summary.transfers = _grouped(session, ArchiveTransfer.status)
    _read_grants(session, settings, summary, now)
    report = verify_log(session, checkpoint_public_key(gateway_key_paths(settings.keys_dir)[1]))
    summary.audit_entries = report.entries
    summary.audit_checkpoints = report.checkpoints
    summary.audit_problems = [f"position {p.position}: {p.what}" for p in report.problems]


def _read_grants(session: Session, settings: Settings, summary: Summary, now: datetime) -> None:
    """Accounts, grants by state, grant uses by outcome and fault code, the verification answers and
    what they disclosed, and the agreement answers the platform sent on from the portal."""
    summary.graduate_accounts = session.scalar(select(func.count()).select_from(GraduateAccount)) or 0
    states: Counter[str] = Counter(
        str(state_of(g.status, g.expires_at, g.uses, g.max_uses, now)) for g in session.scalars(select(Grant))
    )
    summary.grants = dict(sorted(states.items()))
    summary.grant_uses = _grouped(session, GrantUse.outcome)
    summary.grant_refusals = {
        str(code): int(n)
        for code, n in session.execute(
            select(GrantUse.fault_code, func.count())
            .where(GrantUse.outcome == "refused")
            .group_by(GrantUse.fault_code)
            .order_by(GrantUse.fault_code)
        ).all()
    }
    used = session.execute(
        select(Participant.kind, GrantUse.facts)
        .select_from(GrantUse)
        .join(Participant, Participant.id == GrantUse.verifier_id)
        .where(GrantUse.outcome == "used", GrantUse.message_pk.is_not(None))
    ).all()
    summary.verification_answers = dict(sorted(Counter(str(kind) for kind, _ in used).items()))
    disclosed = Counter(fact for _, facts in used for fact in str(facts).split(",") if fact)
    summary.facts_disclosed = {fact: disclosed[fact] for fact in FACTS if disclosed[fact]}
    summary.portal_answers = {
        str(kind): int(n)
        for kind, n in session.execute(
            select(Participant.kind, func.count())
            .select_from(Message)
            .join(Participant, Participant.id == Message.recipient_id)
            .where(Message.sender_id == settings.platform_id, Message.service == "AgreementResponse")
            .group_by(Participant.kind)
            .order_by(Participant.kind)
        ).all()
    }


def _grouped(session: Session, column: Any) -> dict[str, int]:
    return {str(k): int(v) for k, v in session.execute(select(column, func.count()).group_by(column)).all()}


def _refusals(session: Session) -> list[RefusalLine]:
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in session.scalars(select(AuditEntry.entry).where(AuditEntry.kind == "message.refused")):
        facts = decode(entry)
        found.setdefault(str(facts.get("code")), []).append(facts)
    return [
        RefusalLine(
            code,
            len(facts),
            tuple(sorted({str(f["service"]) for f in facts if f.get("service")})),
            tuple(sorted({str(f["claimed_sender"]) for f in facts if f.get("claimed_sender")})),
        )
        for code, facts in sorted(found.items())
    ]


def _extended(transfers: list[ArchiveTransfer], at: datetime, limits: Limits) -> int:
    """Late leavers' open transfers that ``at`` would find overdue without their extension."""
    extra = timedelta(days=limits.late_leaver_extra_days)
    count = 0
    for transfer in transfers:
        if not transfer.leaves_late:
            continue
        due = {
            TransferStatus.REQUESTED: transfer.dispatch_due_at,
            TransferStatus.DISPATCHED: transfer.receipt_due_at,
        }.get(transfer.status)
        if due is not None and due - extra < at <= due:
            count += 1
    return count


def render(summary: Summary) -> str:
    """The summary as plain-text tables for the terminal."""
    lines = [f"Graduation season: {summary.graduates} graduates (seed {summary.seed})", ""]
    lines += [f"{'service':<30} {'accepted':>8} {'delivered':>9} {'pending':>7}"]
    for line in summary.services:
        if line.plumbing:
            lines.append(f"{line.service + ' (plumbing)':<30} {line.accepted:>8} {'-':>9} {'-':>7}")
        elif line.answered and not (line.delivered or line.pending):
            answered = f"  {line.answered} answered by the gateway itself"
            lines.append(f"{line.service:<30} {line.accepted:>8} {'-':>9} {'-':>7}{answered}")
        else:
            lines.append(f"{line.service:<30} {line.accepted:>8} {line.delivered:>9} {line.pending:>7}")
    total = sum(line.accepted for line in summary.services)
    lines += [f"{'total':<30} {total:>8}", ""]
    lines.append("deliveries: " + ", ".join(f"{status} {n}" for status, n in sorted(summary.deliveries.items())))
    lines += ["", "refused by fault code (from the audit log):"]
    for refusal in summary.refused:
        planned = summary.planned_refusals.get(refusal.code, 0)
        lines.append(
            f"  {refusal.code:<32} {refusal.count:>4}  planned {planned:<3} "
            f"{', '.join(refusal.services)} from {', '.join(summary.names.get(s, s) for s in refusal.senders)}"
        )
    if not summary.refused:
        lines.append("  none")
    if summary.refused_by_code != summary.planned_refusals:
        lines.append(f"  NOT AS PLANNED: the season's slips should give {_counts(summary.planned_refusals) or 'none'}")
    lines += [
        "",
        f"registrations: {_counts(summary.registrations)}",
        f"agreements: {_counts(summary.agreements)}",
        f"archive transfers: {_counts(summary.transfers)}",
        "",
        f"graduate accounts: {summary.graduate_accounts}; grants: {_counts(summary.grants) or 'none'}",
        f"grant uses: used {summary.grant_uses.get('used', 0)}, refused {summary.grant_uses.get('refused', 0)}"
        + (f": {_counts(summary.grant_refusals)}" if summary.grant_refusals else ""),
        f"verification answers, signed by the gateway: {sum(summary.verification_answers.values())}"
        + (f" ({_counts(summary.verification_answers)})" if summary.verification_answers else ""),
        "  facts disclosed: " + (", ".join(f"{f} {n}" for f, n in summary.facts_disclosed.items()) or "none"),
        f"agreement answers from the portal, sent on by the platform: {sum(summary.portal_answers.values())}"
        + (f" ({_counts(summary.portal_answers)})" if summary.portal_answers else ""),
        "",
    ]
    lines.append(
        f"overdue archives on {summary.overdue_on}, at the end of that day in Beijing time "
        f"(gateway archives overdue --at {summary.overdue_on}):"
    )
    for o in summary.overdue:
        lines.append(
            f"  {o.transfer_number}  {o.what:<16} {o.days:>3} days  held by {summary.names.get(o.holder, o.holder)}"
        )
        lines.append(f"  {'':<19}  for {summary.names.get(o.receiver, o.receiver)} ({o.receiver})")
    if not summary.overdue:
        lines.append("  none")
    if summary.extended_for_late_leavers:
        lines.append(f"  ({summary.extended_for_late_leavers} more not yet due: late leavers get 30 more days)")
    state = "verified" if summary.audit_ok else "PROBLEMS: " + "; ".join(summary.audit_problems[:3])
    lines += ["", f"audit log: {summary.audit_entries} entries, {summary.audit_checkpoints} checkpoints, {state}", ""]
    for page in summary.pages:
        lines.append(f"{page.label:<16} {page.url}" + ("" if page.available else "  (not routed by this gateway)"))
    if summary.sign_ins is not None:
        lines += ["", *_sign_in_lines(summary.sign_ins)]
    if summary.season_error:
        lines += ["", f"THE SEASON STOPPED: {summary.season_error}"]
    return "\n".join(lines)


def _sign_in_lines(sign_ins: SignIns) -> list[str]:
    lines = [
        "to sign in (a local demonstration gateway):",
        f"  auditor UI       {sign_ins.auditor} / {sign_ins.auditor_password}",
    ]
    if sign_ins.graduate_name is not None:
        lines.append(
            f"  graduate portal  {sign_ins.graduate_name}, identity number {sign_ins.graduate_number_masked}: "
            "the number and the password are in"
        )
    lines.append(f"  {sign_ins.credentials_file} (readable by you alone)")
    if not sign_ins.kept:
        lines.append("  (the temporary home and this file go when the demo ends: --keep-running keeps them until then)")
    return lines


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {n}" for key, n in sorted(counts.items()))
