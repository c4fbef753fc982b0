"""``gateway keys issue``."""

from __future__ import annotations

import click
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.bootstrap import participant_key_dir
from gateway.cli.common import clock, load_settings, store
from gateway.pki.devca import DevelopmentCA, crl_path, write_crl
from gateway.registry.services import get_participant, register_certificate


@click.group()
def keys() -> None:
    """Development key material (the development CA under keys/)."""


@keys.command("issue")
@click.argument("participant_id")
@click.option(
    "--algorithm", type=click.Choice(["rsa", "ec"]), default="rsa", show_default=True, help="RSA-2048 or ECDSA P-256."
)
def issue(participant_id: str, algorithm: str) -> None:
    """Issue a key and certificate for PARTICIPANT_ID from the development CA and register it."""
    settings = load_settings()
    with store(settings) as session:
        participant = get_participant(session, participant_id)
        # store() turns a ConfigurationError (half a CA, wrong passphrase) into a clear exit.
        ca = DevelopmentCA.ensure(settings.keys_dir, clock.now(), settings.key_passphrase)
        out = participant_key_dir(settings.keys_dir, participant.id)
        issued = ca.issue(out, participant.id, participant.name, clock.now(), algorithm, settings.key_passphrase)
        register_certificate(session, participant.id, issued.certificate.public_bytes(Encoding.PEM), clock.now())
    click.echo(f"key         {issued.key_path}")
    click.echo(f"certificate {issued.cert_path} (registered to {participant.id})")


@keys.command("revoke")
@click.argument("participant_id")
@click.option("--fingerprint", help="Revoke only the certificate with this SHA-256 fingerprint (hex, or its start).")
def revoke(participant_id: str, fingerprint: str | None) -> None:
    """Put PARTICIPANT_ID's certificates from the development CA on the CA's revocation list.

    The running gateway reads the new list within a second; messages signed with a revoked
    certificate are refused with CERT_REVOKED.
    """
    settings = load_settings()
    with store(settings) as session:
        participant = get_participant(session, participant_id)
        # store() turns a ConfigurationError (half a CA, wrong passphrase) into a clear exit.
        ca = DevelopmentCA.ensure(settings.keys_dir, clock.now(), settings.key_passphrase)
        chosen = {}
        for record in participant.certificates:
            if fingerprint and not record.fingerprint_sha256.startswith(fingerprint.lower()):
                continue
            certificate = x509.load_pem_x509_certificate(record.pem.encode("ascii"))
            if certificate.issuer == ca.certificate.subject:
                chosen[certificate.serial_number] = record.fingerprint_sha256
        if not chosen:
            raise click.ClickException(f"{participant.id} has no matching certificate from the development CA")
        total = write_crl(ca, settings.keys_dir, clock.now(), {serial: clock.now() for serial in chosen})
    for serial, print_ in chosen.items():
        click.echo(f"revoked serial {serial:x} (fingerprint {print_[:16]}…)")
    click.echo(f"{crl_path(settings.keys_dir)} now lists {total} certificate(s)")
