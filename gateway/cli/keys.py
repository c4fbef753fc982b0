"""``gateway keys issue``."""

from __future__ import annotations

import click
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.bootstrap import participant_key_dir
from gateway.cli.common import clock, load_settings, store
from gateway.errors import ConfigurationError
from gateway.pki.devca import DevelopmentCA
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
        try:
            ca = DevelopmentCA.ensure(settings.keys_dir, clock.now(), settings.key_passphrase)
        except ConfigurationError as exc:
            raise click.ClickException(str(exc)) from None
        out = participant_key_dir(settings.keys_dir, participant.id)
        issued = ca.issue(out, participant.id, participant.name, clock.now(), algorithm, settings.key_passphrase)
        register_certificate(session, participant.id, issued.certificate.public_bytes(Encoding.PEM), clock.now())
    click.echo(f"key         {issued.key_path}")
    click.echo(f"certificate {issued.cert_path} (registered to {participant.id})")
