"""Searching accepted messages by time, participant, service, delivery status, message id and graduate.

:func:`parse_criteria` reads the search form's fields (pure; every bad input becomes a
:class:`FieldError`); :func:`search` runs the query, newest first, a page at a time. A graduate is
never named in criteria: the page turns the identity number typed in (checked with
``stdnum.cn.ric``) into its keyed hash at once (:func:`graduate_hash`), and the criteria carry only
an opaque reference to it (see ``views``), so that no URL, log line or page holds the number.

By default the results hold business documents; the gateway's own plumbing requests (mailbox
fetches, status queries) appear when their service is chosen.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload
from stdnum.exceptions import ValidationError as StdnumError

from gateway.auditor.forms import FieldError, Invalid, day_range, parse_day
from gateway.codes.credit_code import validate_credit_code
from gateway.delivery.plumbing import PLUMBING_SERVICES
from gateway.errors import ValidationError
from gateway.graduates.models import GraduateAccount, MessageSubject
from gateway.grants.models import GrantUse
from gateway.messages.models import Delivery, DeliveryStatus, Message
from gateway.privacy import IdentityHasher, validate_identity_number
from gateway.registrations.models import Registration

PAGE_SIZE = 25
MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
T = TypeVar("T")
FIELDS = ("from", "to", "participant", "service", "status", "message_id", "graduate")


@dataclass(frozen=True)
class Criteria:
    """A valid search. ``graduate`` is the keyed identity hash (never put into a URL: see ``views``)."""

    since: datetime | None = None
    until: datetime | None = None  # exclusive
    participant: str | None = None
    service: str | None = None
    status: str | None = None
    message_id: str | None = None
    graduate: str | None = None
    page: int = 1

    @property
    def is_empty(self) -> bool:
        return not any(
            (self.since, self.until, self.participant, self.service, self.status, self.message_id, self.graduate)
        )


@dataclass(frozen=True)
class Parsed:
    criteria: Criteria | None  # None when any field is invalid
    errors: list[FieldError] = field(default_factory=list)


class _Errors:
    """Collects the :class:`FieldError` of every field that fails, so the page shows them all at once."""

    def __init__(self) -> None:
        self.found: list[FieldError] = []

    def take(self, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except Invalid as exc:
            self.found.append(exc.error)
            return None


def parse_criteria(
    fields: Mapping[str, str],
    services: Collection[str],
    participant_exists: Callable[[str], bool],
    graduate: str | None = None,
) -> Parsed:
    """Criteria from the form's text ``fields`` (names as in :data:`FIELDS`, plus ``page``).

    ``services`` are the catalog's service names; ``graduate`` an identity hash already resolved.
    """
    errors = _Errors()
    start = errors.take(lambda: parse_day(fields.get("from", ""), "from"))
    end = errors.take(lambda: parse_day(fields.get("to", ""), "to"))
    window = errors.take(lambda: day_range(start, end)) if not errors.found else None
    statuses = [s.value for s in DeliveryStatus]
    participant = errors.take(lambda: _participant(fields.get("participant", ""), participant_exists))
    service = errors.take(lambda: _choice(fields.get("service", ""), "service", services, "audit.error.service"))
    status = errors.take(lambda: _choice(fields.get("status", ""), "status", statuses, "audit.error.status"))
    message_id = errors.take(lambda: _message_id(fields.get("message_id", "")))
    if errors.found or window is None:
        return Parsed(None, errors.found)
    return Parsed(
        Criteria(
            since=window[0],
            until=window[1],
            participant=participant,
            service=service,
            status=status,
            message_id=message_id,
            graduate=graduate,
            page=_page(fields.get("page", "")),
        )
    )


def _participant(text: str, exists: Callable[[str], bool]) -> str | None:
    text = text.strip().upper()
    if not text:
        return None
    try:
        code = validate_credit_code(text, "participant")
    except ValidationError as exc:
        raise Invalid(FieldError("participant", "audit.error.participant_code", {"rule": exc.rule})) from None
    if not exists(code):
        raise Invalid(FieldError("participant", "audit.error.participant_unknown", {"value": code}))
    return code


def _choice(text: str, name: str, allowed: Collection[str], key: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    if text not in allowed:
        raise Invalid(FieldError(name, key, {"value": text[:64]}))
    return text


def _message_id(text: str) -> str | None:
    text = text.strip().lower()
    if not text:
        return None
    if not MESSAGE_ID.fullmatch(text):
        raise Invalid(FieldError("message_id", "audit.error.message_id", {"value": text[:64]}))
    return text


def _page(text: str) -> int:
    return int(text) if text.isdigit() and 0 < int(text) < 1_000_000 else 1


def graduate_hash(identity_number: str, hasher: IdentityHasher) -> str:
    """The keyed hash of a valid resident identity number; raises :class:`Invalid` (never echoing it)."""
    number = identity_number.strip().upper()
    try:
        validate_identity_number(number)
    except StdnumError as exc:
        reason = {
            "InvalidLength": "length",
            "InvalidFormat": "format",
            "InvalidChecksum": "checksum",
            "InvalidComponent": "component",
        }.get(type(exc).__name__, "format")
        raise Invalid(FieldError("identity_number", f"audit.error.identity_{reason}")) from None
    return hasher(number)


@dataclass(frozen=True)
class ResultPage:
    messages: list[Message]
    total: int
    page: int
    pages: int


def _query(criteria: Criteria) -> Select[Message]:
    query = select(Message)
    if criteria.service is not None:
        query = query.where(Message.service == criteria.service)
    else:
        query = query.where(Message.service.not_in(PLUMBING_SERVICES))
    if criteria.since is not None:
        query = query.where(Message.received_at >= criteria.since)
    if criteria.until is not None:
        query = query.where(Message.received_at < criteria.until)
    if criteria.participant is not None:
        delivered_to = select(Delivery.message_pk).where(Delivery.recipient_id == criteria.participant)
        query = query.where(
            or_(
                Message.sender_id == criteria.participant,
                Message.recipient_id == criteria.participant,
                Message.id.in_(delivered_to),
            )
        )
    if criteria.status is not None:
        query = query.where(Message.id.in_(select(Delivery.message_pk).where(Delivery.status == criteria.status)))
    if criteria.message_id is not None:
        query = query.where(Message.message_id == criteria.message_id)
    if criteria.graduate is not None:
        # Business documents about the graduate, and the verification requests made with (or refused
        # for) the graduate's grants: those are recorded as grant uses rather than indexed as subjects.
        about = select(MessageSubject.message_pk).where(MessageSubject.identity_hash == criteria.graduate)
        verified = (
            select(GrantUse.message_pk)
            .join(GraduateAccount, GraduateAccount.id == GrantUse.account_id)
            .where(GraduateAccount.identity_hash == criteria.graduate, GrantUse.message_pk.is_not(None))
        )
        query = query.where(or_(Message.id.in_(about), Message.id.in_(verified)))
    return query


def search(session: Session, criteria: Criteria, page_size: int | None = None) -> ResultPage:
    """The page ``criteria.page`` of the messages that match, newest first (a page past the end is empty)."""
    page_size = page_size or PAGE_SIZE
    query = _query(criteria)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, math.ceil(total / page_size))
    rows = session.scalars(
        query.options(selectinload(Message.deliveries))
        .order_by(Message.received_at.desc(), Message.id.desc())
        .limit(page_size)
        .offset((criteria.page - 1) * page_size)
    )
    return ResultPage(list(rows), total, criteria.page, pages)


def registrations_of(session: Session, identity_hash: str) -> list[Registration]:
    """The destination registrations of the graduate with this keyed hash (to show whom a search found)."""
    return list(
        session.scalars(
            select(Registration).where(Registration.identity_hash == identity_hash).order_by(Registration.id)
        )
    )
