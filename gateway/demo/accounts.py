"""The accounts a visitor of the demo signs in with: an auditor, and one of the season's graduates.

The auditor is added as ``gateway users add demo.auditor --role auditor`` adds one
(``gateway.staff.services.add_user``), with a generated password: the summary prints both, since
the demo's gateway is a local one. The graduate's identity number is personal data even when
invented, so it is printed only masked; the identity number and both passwords go into a file in
the demo's home that only its owner may read (mode 0600), whose path the summary prints.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from agencies.records import Graduate
from gateway.clock import Clock
from gateway.privacy import mask_identity
from gateway.staff.models import Role
from gateway.staff.services import add_user
from gateway.store.db import transaction

AUDITOR = "demo.auditor"
CREDENTIALS_FILE = "demo-accounts.txt"


@dataclass(frozen=True)
class SignIns:
    """What the summary says about the accounts to sign in with (the graduate's number masked)."""

    auditor: str
    auditor_password: str
    graduate_name: str | None  # None: no graduate has an account (the season stopped before)
    graduate_number_masked: str | None
    credentials_file: str
    kept: bool  # False: the home, and the file, are removed when the demo ends


def new_password() -> str:
    """A random password that meets the rules of every account (``gateway.passwords``)."""
    while True:
        password = secrets.token_urlsafe(12)
        if len(set(password)) >= 4:
            return password


def add_auditor(sessions: sessionmaker[Session], clock: Clock) -> str:
    """The auditor account :data:`AUDITOR` with a new password; returns the password."""
    password = new_password()
    with transaction(sessions) as session:
        add_user(session, AUDITOR, Role.AUDITOR.value, password, clock.now())
    return password


def write_credentials(
    home: Path, base_url: str, auditor_password: str, graduate: tuple[Graduate, str] | None, kept: bool
) -> SignIns:
    """Write the accounts' credentials (the auditor's, and ``graduate`` with their password if there is
    one) to ``home/demo-accounts.txt``: a new file, mode 0600."""
    path = home / CREDENTIALS_FILE
    lines = ["# gateway demo: accounts of a local demonstration gateway. Readable by you alone (0600)."]
    if graduate is not None:
        lines += [
            f"graduate portal:           {base_url}/graduate/sign-in",
            f"graduate name:             {graduate[0].name}",
            f"graduate identity number:  {graduate[0].identity_number}",
            f"graduate password:         {graduate[1]}",
        ]
    lines += [
        f"auditor UI:                {base_url}/audit/",
        f"auditor username:          {AUDITOR}",
        f"auditor password:          {auditor_password}",
    ]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    return SignIns(
        auditor=AUDITOR,
        auditor_password=auditor_password,
        graduate_name=graduate[0].name if graduate else None,
        graduate_number_masked=mask_identity(graduate[0].identity_number) if graduate else None,
        credentials_file=str(path),
        kept=kept,
    )
