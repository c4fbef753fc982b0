"""``notify``: the one function the domain calls when something happens to a graduate's paperwork.

It inserts one row into ``graduate_notices`` in the caller's transaction and does nothing else (no
read, no e-mail): the intake's transaction stays one short write. The insert is a Core statement
built once: through the ORM's unit of work the row cost several times as much at the commit
(issue 13). Nobody reads a notice back in the transaction that writes it, so in the intake's group
commit it waits for the commit and goes with the batch's other notices (``gateway.store.deferred``). The e-mail,
when the graduate confirmed an address, is made and sent later by the sweep (``gateway.notices.mail``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from gateway.notices.models import MailState, Notice
from gateway.store.deferred import write

Fact = str | int | bool | None | Sequence[str]

# What happens, by kind; the e-mailed ones are those the graduate asked to hear about (issue 17).
EMAILED = frozenset(
    {
        "registration_filed",
        "registration_rejected",
        "archive_dispatched",
        "archive_received",
        "offer_arrived",
        "grant_used",
        "grant_refused",
    }
)
PORTAL_ONLY = frozenset({"registration_submitted", "archive_requested"})
KINDS = EMAILED | PORTAL_ONLY

_INSERT = insert(cast(Table, Notice.__table__))


def notify(
    session: Session,
    kind: str,
    at: datetime,
    *,
    identity_hash: str | None = None,
    account_id: int | None = None,
    message_id: str | None = None,
    facts: Mapping[str, Fact] | None = None,
) -> None:
    """Record that ``kind`` happened at ``at`` to the graduate named by ``identity_hash`` or ``account_id``.

    ``facts`` (ids, document numbers, organisations' ids; never an identity number) are what the
    portal and the e-mail say. Raises ``ValueError`` for an unknown kind or a notice about nobody.
    """
    if kind not in KINDS:
        raise ValueError(f"no notice kind {kind!r}")
    if identity_hash is None and account_id is None:
        raise ValueError("a notice is about a graduate: give identity_hash or account_id")
    write(
        session,
        _INSERT,
        {
            "identity_hash": identity_hash,
            "account_id": account_id,
            "kind": kind,
            "at": at,
            "message_id": message_id,
            "facts": json.dumps(dict(facts or {}), ensure_ascii=False, sort_keys=True),
            "mail_state": MailState.NEW if kind in EMAILED else MailState.NOT_MAILED,
        },
    )
