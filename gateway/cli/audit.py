"""``gateway audit sequence|checkpoint|verify``: the tamper-evident log on the command line."""

from __future__ import annotations

import json
import sys

import click
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from gateway.audit.models import AuditCheckpoint, AuditEntry
from gateway.audit.sequencer import Sequencer
from gateway.audit.verify import verify_log
from gateway.bootstrap import gateway_key_paths
from gateway.cli.common import clock, load_settings, store
from gateway.pki.keystore import PemKeyStore
from gateway.store.db import connect, session_factory


@click.group()
def audit() -> None:
    """The tamper-evident audit log (Merkle tree, signed checkpoints)."""


@audit.command("sequence")
def sequence() -> None:
    """Fold new entries into the tree and sign a checkpoint (workers do this every few seconds)."""
    settings = load_settings()
    key_path, cert_path = gateway_key_paths(settings.keys_dir)
    engine = connect(settings.database_url)
    try:
        sequencer = Sequencer(session_factory(engine), PemKeyStore(key_path, cert_path, settings.key_passphrase), clock)
        size = sequencer.run_once()
    finally:
        engine.dispose()
    click.echo(f"integrated to {size} entries" if size else "nothing new to integrate")


@audit.command("checkpoint")
def checkpoint() -> None:
    """Print the latest signed checkpoint."""
    with store(load_settings()) as session:
        latest = session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1))
        if latest is None:
            raise click.ClickException("no checkpoint yet")
        click.echo(latest.note, nl=False)


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(as_json: bool) -> None:
    """Recompute the tree from the stored entries and check every checkpoint; exit 1 on any problem."""
    settings = load_settings()
    _, cert_path = gateway_key_paths(settings.keys_dir)
    public_key = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise click.ClickException("checkpoints are ECDSA-signed: the gateway certificate must carry an EC key")
    with store(settings) as session:
        total = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
        with click.progressbar(length=total, label="verifying entries", file=sys.stderr) as bar:
            report = verify_log(session, public_key, bar.update)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "entries": report.entries,
                    "checkpoints": report.checkpoints,
                    "problems": [{"position": p.position, "what": p.what} for p in report.problems],
                }
            )
        )
    else:
        for problem in report.problems:
            click.echo(f"position {problem.position}: {problem.what}")
        click.echo(f"{report.entries} entries, {report.checkpoints} checkpoints: {'OK' if report.ok else 'PROBLEMS'}")
    if not report.ok:
        raise SystemExit(1)
