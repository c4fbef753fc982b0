"""``gateway send``: sign a document as a participant, send it, check and keep the receipt."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.cli.common import load_settings
from gateway.errors import ConfigurationError, GatewayError
from gateway.sdk.client import GatewayClient, GatewayRefusal


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as", "sender", required=True, help="The sending participant; its key comes from keys/participants/.")
@click.option("--to", "recipient", help="Recipient: a participant id, or ROLE@REGION (talent_service_agency@110105).")
@click.option("--service", help="The service (WSDL operation); default: the document's root element name.")
@click.option("--receipt-out", type=click.Path(dir_okay=False, path_type=Path), help="Write the signed receipt here.")
@click.option("--url", help="The gateway's base URL (default GATEWAY_PUBLIC_URL, or http://GATEWAY_HOST:GATEWAY_PORT).")
@click.option("--message-id", help="Use this message id (a UUID) instead of a new one.")
def send(
    file: Path,
    sender: str,
    recipient: str | None,
    service: str | None,
    receipt_out: Path | None,
    url: str | None,
    message_id: str | None,
) -> None:
    """Sign FILE (a business document, e.g. from examples/) as a participant and send it.

    Exits 0 with the verified receipt, or non-zero printing the gateway's fault code.
    """
    settings = load_settings()
    if not recipient:
        raise click.UsageError("--to is required: a participant id or ROLE@REGION")
    role = region = None
    target: str | None = recipient
    if "@" in recipient:
        role, region = recipient.split("@", 1)
        target = None
    base = url or settings.published_url
    try:
        client = GatewayClient.from_keys(base, sender.upper(), settings.keys_dir, settings.key_passphrase)
        sent = client.send(
            file.read_bytes(), service=service, recipient=target, role=role, region=region, message_id=message_id
        )
    except GatewayRefusal as refusal:
        click.echo(f"refused: {refusal.code}: {refusal.message}", err=True)
        raise SystemExit(2) from None
    except (ConfigurationError, GatewayError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    receipt = sent.receipt
    click.echo(f"accepted {sent.message_id} at {receipt.received_at} (status {receipt.status})")
    for part, digest in receipt.digests.items():
        click.echo(f"  receipt acknowledges {part:<9} sha256 {digest}")
    if receipt_out:
        receipt_out.write_bytes(receipt.xml)
        click.echo(f"signed receipt written to {receipt_out}")
    if sent.verification is not None:
        answer = sent.verification
        click.echo(f"answered under grant {answer.grant_id} for {answer.subject_name} (gateway-signed):")
        if answer.identity_match is not None:
            click.echo(f"  identity_match  {'yes' if answer.identity_match else 'no'}")
        if answer.education is not None:
            e = answer.education
            click.echo(
                f"  education       {e.school.name} ({e.school.credit_code}), {e.level}, {e.major}, {e.graduation_date}"
            )
        if answer.destination is not None:
            employer = answer.destination.employer
            at = f", {employer.name} ({employer.credit_code})" if employer else ""
            click.echo(f"  destination     code {answer.destination.code}{at}")
        if answer.archive is not None:
            a = answer.archive
            click.echo(f"  archive         held by {a.holder.name} ({a.holder.credit_code}), {a.transfer_status}")
