"""``gateway send``: sign a document as a participant, send it, check and keep the receipt."""

from __future__ import annotations

import re
import urllib.parse
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gateway.cli.common import load_settings
from gateway.errors import ConfigurationError, Fault, GatewayError

if TYPE_CHECKING:
    import requests

# What the routing header's schema allows (schemas/gateway-1.xsd), checked before anything is signed.
_PARTICIPANT_ID = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}")
_REGION = re.compile(r"[0-9]{6}")
ROLES = ("university", "education_department", "talent_service_agency", "employer", "household_registration_office")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as", "sender", required=True, help="The sending participant; its key comes from keys/participants/.")
@click.option(
    "--to",
    "recipient",
    required=True,
    help="Recipient: a participant id, or ROLE@REGION (talent_service_agency@110105).",
)
@click.option("--service", help="The service (WSDL operation); default: the document's root element name.")
@click.option("--receipt-out", type=click.Path(dir_okay=False, path_type=Path), help="Write the signed receipt here.")
@click.option("--url", help="The gateway's base URL (default GATEWAY_PUBLIC_URL, or http://GATEWAY_HOST:GATEWAY_PORT).")
@click.option("--message-id", help="Use this message id (a UUID) instead of a new one.")
def send(
    file: Path,
    sender: str,
    recipient: str,
    service: str | None,
    receipt_out: Path | None,
    url: str | None,
    message_id: str | None,
) -> None:
    """Sign FILE (a business document, e.g. from examples/) as a participant and send it.

    Exits 0 with the verified receipt, or non-zero printing the gateway's fault code.
    """
    # The SDK (zeep, requests, signxml) is imported only to send, not for --help or a usage error.
    import requests

    from gateway.sdk.client import GatewayClient, GatewayRefusal, NotAGatewayDocument

    settings = load_settings()
    target, role, region = recipient_of(recipient)
    base = gateway_url(url or settings.published_url, "--url" if url else "GATEWAY_PUBLIC_URL")
    if message_id is not None:
        try:
            message_id = str(uuid.UUID(message_id))
        except ValueError:
            raise click.BadParameter(f"{message_id!r} is not a UUID", param_hint="--message-id") from None
    sender = sender.strip().upper()
    if not (settings.keys_dir / "participants" / sender / "key.pem").exists():
        raise click.BadParameter(
            f"no key for {sender} in {settings.keys_dir / 'participants'}: issue one with "
            f"`gateway keys issue {sender}`, or check GATEWAY_KEYS_DIR",
            param_hint="--as",
        )
    try:
        client = GatewayClient.from_keys(base, sender, settings.keys_dir, settings.key_passphrase)
        sent = client.send(
            file.read_bytes(), service=service, recipient=target, role=role, region=region, message_id=message_id
        )
    except GatewayRefusal as refusal:
        click.echo(f"refused: {refusal.code}: {refusal.message}", err=True)
        raise SystemExit(2) from None
    except Fault as exc:  # the file itself, refused by the parser before anything is sent
        raise click.ClickException(f"{file}: {exc}") from None
    except NotAGatewayDocument as exc:
        raise click.ClickException(f"{file} cannot be sent: {exc}") from None
    except requests.RequestException as exc:
        raise unreachable(base, exc) from None
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


def recipient_of(value: str) -> tuple[str | None, str | None, str | None]:
    """``--to`` as (participant id, role, region); a usage error names what is wrong with it."""
    text = value.strip()
    if "@" not in text:
        if not _PARTICIPANT_ID.fullmatch(text.upper()):
            raise click.BadParameter(
                f"{value!r} is neither a participant id (an 18-character unified social credit code) "
                "nor ROLE@REGION (talent_service_agency@110105)",
                param_hint="--to",
            )
        return text.upper(), None, None
    role, region = (part.strip() for part in text.split("@", 1))
    if role not in ROLES:
        raise click.BadParameter(f"{role!r} is not a role; one of {', '.join(ROLES)}", param_hint="--to")
    if not _REGION.fullmatch(region):
        raise click.BadParameter(f"{region!r} is not a region code (six digits, e.g. 110105)", param_hint="--to")
    return None, role, region


def gateway_url(value: str, source: str) -> str:
    """``value`` if it is an http(s) URL with a host; a usage error naming ``source`` otherwise."""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{value!r} is not the gateway's URL; give http://HOST:PORT (e.g. http://127.0.0.1:8080)",
            param_hint=source,
        )
    return value


def unreachable(base: str, exc: requests.RequestException) -> click.ClickException:
    """One line for a gateway that does not answer over HTTP."""
    import requests

    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.Timeout):
        return click.ClickException(
            f"no gateway answers at {base} (connection refused or host unknown): start it with "
            "`gateway serve` (or `make run`), or name the right one with --url"
        )
    if isinstance(exc, requests.Timeout):
        return click.ClickException(f"the gateway at {base} did not answer in time; try again, or check its health")
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return click.ClickException(
            f"{base} answered HTTP {exc.response.status_code} for the WSDL: is --url the gateway's base URL?"
        )
    return click.ClickException(f"cannot talk to the gateway at {base}: {type(exc).__name__}")
