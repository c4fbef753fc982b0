"""``gateway keys issue|revoke|register|crl``."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.cli.common import clock, load_settings, store
from gateway.errors import ConfigurationError
from gateway.pki.devca import CRL_VALIDITY, DevelopmentCA, crl_path, write_crl
from gateway.pki.participants import issue_certificate, revoke_certificates
from gateway.registry.services import register_certificate


@click.group()
def keys() -> None:
    """Development key material (the development CA under keys/)."""


@keys.command("issue")
@click.argument("participant_id")
@click.option(
    "--algorithm", type=click.Choice(["rsa", "ec"]), default="rsa", show_default=True, help="RSA-2048 or ECDSA P-256."
)
@click.option(
    "--replace",
    is_flag=True,
    help="Overwrite the participant's key and certificate files. The old certificate stays registered and "
    "valid until it expires or is revoked (`gateway keys revoke ID --fingerprint ...`).",
)
def issue(participant_id: str, algorithm: str, replace: bool) -> None:
    """Issue a key and certificate for PARTICIPANT_ID from the development CA and register it.

    A participant that already has a key under keys/participants/ keeps it unless --replace is given.
    """
    settings = load_settings()
    old_cert = settings.keys_dir / "participants" / participant_id.strip().upper() / "cert.pem"
    old = _certificate_or_none(old_cert)
    if old_cert.exists() and not replace:
        valid = f", valid until {old.not_valid_after_utc:%Y-%m-%d}" if old else ""
        raise click.ClickException(
            f"{participant_id.strip().upper()} already has a key and certificate in {old_cert.parent}{valid}. "
            "Run again with --replace to overwrite them; the old certificate then stays registered and valid "
            "until it expires, unless you revoke it (`gateway keys revoke ID --fingerprint ...`)"
        )
    # store() turns NotFound and a ConfigurationError (half a CA, wrong passphrase) into a clear exit.
    with store(settings) as session:
        issued = issue_certificate(session, settings, participant_id, clock.now(), algorithm)
    click.echo(f"key         {issued.key_path}")
    click.echo(f"certificate {issued.cert_path} (registered to {participant_id.strip().upper()})")
    if old is not None:
        fingerprint = old.fingerprint(hashes.SHA256()).hex()
        click.echo(
            f"the old certificate (fingerprint {fingerprint[:16]}…) stays registered and valid until "
            f"{old.not_valid_after_utc:%Y-%m-%d}; to refuse messages signed with it: "
            f"gateway keys revoke {participant_id.strip().upper()} --fingerprint {fingerprint[:16]}"
        )


def _certificate_or_none(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


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
        revocation = revoke_certificates(session, settings, participant_id, clock.now(), fingerprint)
    for serial, print_ in revocation.revoked.items():
        click.echo(f"revoked serial {serial:x} (fingerprint {print_[:16]}…)")
    click.echo(f"{crl_path(settings.keys_dir)} now lists {revocation.listed} certificate(s)")


@keys.command("crl")
@click.option(
    "--new", "new", is_flag=True, help="Start an empty list when the file is missing (nothing was ever revoked)."
)
def crl(new: bool) -> None:
    """Re-issue the development CA's revocation list: the same revoked certificates, valid 30 more days.

    The gateway refuses every message (REVOCATION_UNAVAILABLE) once the list it holds is past its
    nextUpdate; run this before then (a running gateway reads the new list within a second).
    `gateway init` re-issues it too once half its life is gone.
    """
    settings = load_settings()
    path = crl_path(settings.keys_dir)
    if not (settings.keys_dir / "ca" / "ca.key.pem").exists():
        raise click.ClickException(f"no development CA in {path.parent}: run `gateway init` first")
    if path.exists() == new:
        raise click.ClickException(
            f"{path} exists: run `gateway keys crl` without --new"
            if new
            else f"{path} is missing and it is the only record of the revoked certificates: restore it from a "
            "backup, or run `gateway keys crl --new` if the development CA never revoked a certificate"
        )
    now = clock.now()
    try:
        ca = DevelopmentCA.ensure(settings.keys_dir, now, settings.key_passphrase)
        listed = write_crl(ca, settings.keys_dir, now)
    except (ConfigurationError, ValueError) as exc:
        raise click.ClickException(f"cannot re-issue {path}: {exc}") from None
    click.echo(f"{path} re-issued: lists {listed} certificate(s), next update {now + CRL_VALIDITY:%Y-%m-%d %H:%M} UTC")
    if path not in settings.crls:
        click.echo(f"note: the gateway reads GATEWAY_CRLS ({', '.join(map(str, settings.crls))}), not this list")


@keys.command("register")
@click.argument("participant_id")
@click.argument("certificate", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def register(participant_id: str, certificate: Path) -> None:
    """Register CERTIFICATE (PEM), issued by your PKI from the participant's own CSR, to PARTICIPANT_ID.

    The gateway accepts its signatures once it chains to a trust anchor (GATEWAY_TRUST_ANCHORS)
    and names the participant; registering the same certificate again changes nothing.
    """
    settings = load_settings()
    with store(settings) as session:
        record = register_certificate(session, participant_id, certificate.read_bytes(), clock.now())
        fingerprint, subject, not_after = record.fingerprint_sha256, record.subject, record.not_after
    click.echo(f"registered {subject} (fingerprint {fingerprint[:16]}…, valid until {not_after:%Y-%m-%d})")
