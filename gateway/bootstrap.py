"""``gateway init``: everything a fresh machine needs, created once and reused after (idempotent).

- the data folder and the database schema (Alembic migrations);
- the development CA, its (empty) revocation list, and the gateway's own key and certificate under ``keys/``;
- the secrets: the keyed-hash key for identity numbers and the web session key;
- the grant-token key (EC P-256) that signs graduates' authorisation tokens (``keys/grants/``);
- the platform participant (``GATEWAY_PLATFORM_ID``) under which the gateway sends messages on a
  graduate's behalf, with the gateway's certificate registered to it;
- the payload key ring with its first key, which encrypts stored envelopes (``gateway.messages.keyring``);
- with ``demo=True``, the demonstration participants and a key and certificate for each.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.orm import Session

from gateway.clock import Clock
from gateway.delivery.originate import PLATFORM_KIND
from gateway.grants.tokens import ensure_token_key, token_key_path
from gateway.messages.keyring import ensure_key_ring
from gateway.pki.devca import CRL_VALIDITY, DevelopmentCA, crl_path, write_crl
from gateway.registry.models import DeliveryMode, Participant
from gateway.registry.services import ParticipantInput, add_participant, register_certificate
from gateway.settings import Settings
from gateway.store.db import connect, migrate, session_factory, transaction

GATEWAY_ID = "gateway"


@dataclass
class InitReport:
    """What ``initialise`` found or made, for the command to print."""

    database_revision: str | None = None
    created: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)  # what init will not do by itself


def gateway_key_paths(keys_dir: Path) -> tuple[Path, Path]:
    return keys_dir / "gateway" / "key.pem", keys_dir / "gateway" / "cert.pem"


def participant_key_dir(keys_dir: Path, participant_id: str) -> Path:
    return keys_dir / "participants" / participant_id


def initialise(settings: Settings, clock: Clock, demo: bool = False) -> InitReport:
    """Bring data, schema, keys and secrets into being where missing; return what was done."""
    report = InitReport()
    now = clock.now()
    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.keys_dir.mkdir(parents=True, exist_ok=True)
    engine = connect(settings.database_url)
    try:
        report.database_revision = migrate(engine)
        ca_existed = (settings.keys_dir / "ca" / "ca.cert.pem").exists()
        ca = DevelopmentCA.ensure(settings.keys_dir, now, settings.key_passphrase)
        (report.reused if ca_existed else report.created).append(f"development CA {ca.cert_path}")
        _ensure_crl(ca, settings, now, ca_existed, report)
        key_path, cert_path = gateway_key_paths(settings.keys_dir)
        if key_path.exists() and cert_path.exists():
            report.reused.append(f"gateway key and certificate {cert_path}")
        else:
            ca.issue(key_path.parent, GATEWAY_ID, "Graduate Exchange Gateway", now, "ec", settings.key_passphrase)
            report.created.append(f"gateway key and certificate {cert_path}")
        for name in ("identity-hash.key", "session.key"):
            path = settings.keys_dir / "secrets" / name
            if path.exists():
                report.reused.append(f"secret {path}")
            else:
                _write_secret(path)
                report.created.append(f"secret {path}")
        if ensure_token_key(settings.keys_dir, settings.key_passphrase):
            report.created.append(f"grant-token key {token_key_path(settings.keys_dir)}")
        else:
            report.reused.append(f"grant-token key {token_key_path(settings.keys_dir)}")
        with transaction(session_factory(engine)) as session:
            created = ensure_platform(session, settings, cert_path.read_bytes(), clock.now())
        (report.created if created else report.reused).append(f"platform participant {settings.platform_id}")
        ring = settings.payload_keys_dir
        if ensure_key_ring(ring, now):
            report.created.append(f"payload key ring {ring} (AES-256-GCM key for stored envelopes)")
        else:
            report.reused.append(f"payload key ring {ring}")
        if demo:
            with transaction(session_factory(engine)) as session:
                _demo_participants(session, settings, ca, clock, report)
    finally:
        engine.dispose()
    return report


def _ensure_crl(ca: DevelopmentCA, settings: Settings, now: datetime, ca_existed: bool, report: InitReport) -> None:
    """A new CA gets an empty revocation list; an existing one's list is re-issued when half its life is gone.

    A missing list of an existing CA is not replaced by an empty one: it is the only record of the
    certificates revoked, and the gateway refuses every message until it is back (fail closed).
    """
    path = crl_path(settings.keys_dir)
    if not path.exists():
        if ca_existed:
            report.attention.append(
                f"the revocation list {path} is missing, so the gateway refuses every message: restore it from a "
                "backup, or run `gateway keys crl --new` if the development CA never revoked a certificate"
            )
        else:
            write_crl(ca, settings.keys_dir, now)
            report.created.append(f"revocation list {path}")
        return
    try:
        next_update = x509.load_pem_x509_crl(path.read_bytes()).next_update_utc
    except ValueError:
        report.attention.append(f"the revocation list {path} is not a PEM CRL: restore it from a backup")
        return
    if next_update is None or next_update - now < CRL_VALIDITY / 2:
        write_crl(ca, settings.keys_dir, now)  # the same entries, a fresh nextUpdate
        report.created.append(f"re-issued revocation list {path} (next update {now + CRL_VALIDITY:%Y-%m-%d})")
    else:
        report.reused.append(f"revocation list {path}")


PLATFORM_NAME = "高校毕业生就业服务平台 (Graduate Exchange Gateway)"
PLATFORM_REGION = "110000"  # where the national platform sits; it serves no region and is not routed to


def ensure_platform(session: Session, settings: Settings, gateway_cert_pem: bytes, now: datetime) -> bool:
    """Register the platform participant with the gateway's certificate unless it exists; True if made now.

    Its kind, ``platform``, is in no rule of the access matrix and no role of the routing header:
    nobody can address it and it sends nothing through the intake; only the gateway sends as it.
    """
    created = False
    if session.get(Participant, settings.platform_id) is None:
        session.add(
            Participant(
                id=settings.platform_id,
                name=PLATFORM_NAME,
                kind=PLATFORM_KIND,
                region=PLATFORM_REGION,
                delivery_mode=DeliveryMode.PULL.value,
                enabled=True,
                created_at=now,
                updated_at=now,
            )
        )
        session.flush()
        created = True
    register_certificate(session, settings.platform_id, gateway_cert_pem, now)
    return created


def _write_secret(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")


def demo_participant_inputs() -> list[ParticipantInput]:
    """The demonstration participants of ``gateway/data/demo-participants.json``."""
    text = (resources.files("gateway") / "data" / "demo-participants.json").read_text(encoding="utf-8")
    rows = json.loads(text)["participants"]
    return [ParticipantInput(**{**row, "regions_served": tuple(row.get("regions_served", ()))}) for row in rows]


def _demo_participants(
    session: Session, settings: Settings, ca: DevelopmentCA, clock: Clock, report: InitReport
) -> None:
    enrol_participants(session, settings, ca, clock, demo_participant_inputs(), report)


def enrol_participants(
    session: Session,
    settings: Settings,
    ca: DevelopmentCA,
    clock: Clock,
    inputs: Sequence[ParticipantInput],
    report: InitReport,
    algorithm: str = "rsa",
) -> None:
    """Register each participant not yet registered, and issue and register a development key for
    each one that has none under ``keys/participants/ID/`` (``gateway init --demo``, ``gateway demo``)."""
    for data in inputs:
        if session.get(Participant, data.id) is None:
            add_participant(session, data, clock.now())
            report.created.append(f"demo participant {data.id} {data.name}")
        else:
            report.reused.append(f"demo participant {data.id}")
        out = participant_key_dir(settings.keys_dir, data.id)
        if not (out / "cert.pem").exists():
            issued = ca.issue(out, data.id, data.name, clock.now(), algorithm, settings.key_passphrase)
            report.created.append(f"key and certificate {issued.cert_path}")
        cert = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
        register_certificate(session, data.id, cert.public_bytes(Encoding.PEM), clock.now())
