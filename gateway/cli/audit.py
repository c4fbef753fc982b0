"""``gateway audit ...``: the tamper-evident log on the command line.

``sequence``, ``checkpoint`` and ``verify`` work the log (``verify`` also against the checkpoints
published outside the database and any an auditor kept, ``--checkpoint FILE|URL``); ``prove
inclusion|consistency`` print the proofs ``/log/proof/...`` serves, ``verify-proof`` checks one
offline, and ``export`` writes a message's evidence bundle (``docs/audit.md``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from gateway.audit import proofs
from gateway.audit.anchors import Anchor, AnchorUnusable, kept, published_anchors
from gateway.audit.checkpoint import checkpoint_public_key
from gateway.audit.evidence import EvidenceNotReady, build_bundle
from gateway.audit.models import AuditEntry
from gateway.audit.offline import ProofRejected, check_proof
from gateway.audit.proofs import latest_checkpoint
from gateway.audit.publish import CheckpointDirectory
from gateway.audit.sequencer import Sequencer
from gateway.audit.verify import verify_log
from gateway.bootstrap import gateway_key_paths
from gateway.cli.common import clock, load_settings, store
from gateway.errors import ConfigurationError
from gateway.pki.keystore import PemKeyStore
from gateway.settings import Settings
from gateway.store.db import connect, session_factory

EXPORT_WAIT_SECONDS = 15.0


@click.group()
def audit() -> None:
    """The tamper-evident audit log (Merkle tree, signed checkpoints)."""


def _sequence(settings: Settings) -> int:
    """Run the sequencer once; the new tree size, or 0 when there was nothing new (or another one ran)."""
    key_path, cert_path = gateway_key_paths(settings.keys_dir)
    engine = connect(settings.database_url)
    try:
        sequencer = Sequencer(
            session_factory(engine),
            PemKeyStore(key_path, cert_path, settings.key_passphrase),
            clock,
            published=CheckpointDirectory(settings.checkpoint_dir),
        )
        size = sequencer.run_once()
        if sequencer.stopped:
            click.echo(f"Warning: {sequencer.stopped}", err=True)
        return size
    finally:
        engine.dispose()


@audit.command("sequence")
def sequence() -> None:
    """Fold new entries into the tree and sign a checkpoint (workers do this every few seconds)."""
    size = _sequence(load_settings())
    click.echo(f"integrated to {size} entries" if size else "nothing new to integrate")


@audit.command("checkpoint")
def checkpoint() -> None:
    """Print the latest signed checkpoint."""
    with store(load_settings()) as session:
        click.echo(latest_checkpoint(session).note, nl=False)


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--checkpoint",
    "kept_sources",
    multiple=True,
    metavar="FILE|URL",
    help="A signed checkpoint kept outside the gateway (a file, or a URL such as another node's "
    "/log/checkpoint): the log must hold to it. May be given several times.",
)
def verify(as_json: bool, kept_sources: tuple[str, ...]) -> None:
    """Recompute the tree from the stored entries and check every checkpoint, those in the database,
    those published in GATEWAY_CHECKPOINT_DIR and any kept one; exit 1 on any problem."""
    settings = load_settings()
    public_key = _checkpoint_key(gateway_key_paths(settings.keys_dir)[1])
    kept_anchors: list[Anchor] = []
    for source in kept_sources:  # each is read and its signature checked before the long pass
        try:
            kept_anchors.append(kept(source, public_key))
        except AnchorUnusable as exc:
            raise click.ClickException(f"{exc}; give a checkpoint note this gateway signed") from None
    published = CheckpointDirectory(settings.checkpoint_dir)
    with store(settings) as session:
        total = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
        with click.progressbar(length=total, label="verifying entries", file=sys.stderr) as bar:
            report = verify_log(session, public_key, bar.update, published_anchors(published), kept_anchors)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "entries": report.entries,
                    "checkpoints": report.checkpoints,
                    "published": report.published,
                    "kept": report.kept,
                    "problems": [{"position": p.position, "what": p.what} for p in report.problems],
                }
            )
        )
    else:
        for problem in report.problems:
            click.echo(f"position {problem.position}: {problem.what}")
        if not report.published:
            alone = (
                ""
                if report.kept
                else ": the log was checked against the database alone, which cannot show entries deleted at "
                "the end together with their checkpoints (give a kept one with --checkpoint)"
            )
            click.echo(f"no published checkpoints in {published.path}{alone}")
        click.echo(
            f"{report.entries} entries, {report.checkpoints} checkpoints, {report.published} published, "
            f"{report.kept} kept: {'OK' if report.ok else 'PROBLEMS'}"
        )
    if not report.ok:
        raise SystemExit(1)


def _checkpoint_key(certificate: Path) -> ec.EllipticCurvePublicKey:
    try:
        return checkpoint_public_key(certificate)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


def _print_json(document: dict[str, Any]) -> None:
    click.echo(json.dumps(document, indent=2))


@audit.group("prove")
def prove() -> None:
    """Inclusion and consistency proofs against the signed checkpoints, as JSON (as /log/proof/... serves them)."""


@prove.command("inclusion")
@click.option("--index", type=click.IntRange(min=0), help="The entry's leaf index (on the receipt: gw:LeafIndex).")
@click.option("--leaf-hash", help="Or the entry's leaf hash, hex (gw:LeafHash) or base64.")
@click.option("--size", type=click.IntRange(min=1), help="The tree size [default: the latest checkpoint's].")
def prove_inclusion(index: int | None, leaf_hash: str | None, size: int | None) -> None:
    """Print the proof that an entry is in the signed tree."""
    if (index is None) == (leaf_hash is None):
        raise click.UsageError("give --index or --leaf-hash")
    with store(load_settings()) as session:
        hashed = proofs.parse_leaf_hash(leaf_hash) if leaf_hash else None
        _print_json(proofs.inclusion(session, index=index, size=size, leaf_hash=hashed).as_json())


@prove.command("consistency")
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1), required=False)
def prove_consistency(old: int, new: int | None) -> None:
    """Print the proof that the tree of OLD entries is a prefix of the tree of NEW [default: the latest]."""
    with store(load_settings()) as session:
        _print_json(proofs.consistency(session, old, new).as_json())


@audit.command("verify-proof")
@click.argument("proof", type=click.File("r"))
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.File("r"),
    help="The signed checkpoint to check against (the newer one for consistency) [default: the proof's].",
)
@click.option("--old-checkpoint", type=click.File("r"), help="The older checkpoint of a consistency proof.")
@click.option("--entry", type=click.File("rb"), help="The entry's bytes: check that they hash to the proof's leaf.")
@click.option(
    "--certificate",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The gateway's certificate (PEM) [default: the one under GATEWAY_KEYS_DIR].",
)
def verify_proof(proof: Any, checkpoint_file: Any, old_checkpoint: Any, entry: Any, certificate: Path | None) -> None:
    """Check a proof (the JSON of `prove` or /log/proof/...) offline; exit 1 when it does not verify."""
    try:
        document = json.load(proof)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"the proof is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise click.ClickException("the proof is not a JSON object")
    key = _checkpoint_key(certificate or gateway_key_paths(load_settings().keys_dir)[1])
    try:
        verdict = check_proof(
            document,
            key,
            checkpoint_file.read() if checkpoint_file else None,
            old_checkpoint.read() if old_checkpoint else None,
            entry.read() if entry else None,
        )
    except ProofRejected as exc:
        click.echo(f"FAILED: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(f"OK: {verdict.summary}")


@audit.command("export")
@click.argument("message_id")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write the evidence bundle (JSON).",
)
@click.option("--sender", help="The sender's id, when two senders used the same message id.")
@click.option(
    "--no-sequence",
    is_flag=True,
    help="Do not run the sequencer when the message's entries are not yet in a signed checkpoint.",
)
def export(message_id: str, out: Path, sender: str | None, no_sequence: bool) -> None:
    """Write MESSAGE_ID's evidence bundle: the signed message, the receipt, its audit entries with
    their inclusion proofs, the signed checkpoint and the certificates; tools/verify_evidence.py checks it."""
    settings = load_settings()
    deadline = time.monotonic() + EXPORT_WAIT_SECONDS
    while True:
        try:
            with store(settings) as session:
                bundle = build_bundle(session, message_id, settings, sender=sender, clock=clock)
            break
        except EvidenceNotReady as exc:
            if no_sequence or time.monotonic() > deadline:
                raise click.ClickException(str(exc)) from None
        # The entries are recorded but not yet signed for: sign for them now. When a worker's
        # sequencer holds the lock this does nothing, and the worker's checkpoint comes instead.
        while _sequence(settings):
            pass
        time.sleep(0.2)
    out.write_bytes(bundle)
    click.echo(f"wrote the evidence bundle of message {message_id} to {out} ({len(bundle)} bytes)")
