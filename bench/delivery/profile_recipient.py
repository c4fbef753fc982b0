"""bench/delivery/profile_recipient.py: the CPU a push recipient built on the SDK spends on a delivery.

    .venv/bin/python bench/delivery/profile_recipient.py [--deliveries N] [--rounds N]

Initialises a throw-away demo gateway home (SQLite, development keys), builds ``N`` signed
``gw:Delivery`` SOAP requests as the gateway's worker builds them (``gateway.delivery.forward``:
the benchmark's signed destination registrations as the originals, about 7.5 KB each), and posts
them, in rounds, to the SDK's recipient application (``gateway.sdk.recipient.recipient_app``:
parse, verify the gateway's signature and the certificate's chain, de-duplicate, acknowledge) and
to a bare Flask view that parses the same request with the hardened parser and answers the same
acknowledgement without checking anything: the least a recipient can do. Both are called as WSGI
applications in this thread (no socket, no server: ``bench/delivery/run.py`` measures the served
recipient); prints the CPU time of this thread per delivery for each, per round, and their ratio.
For steadier figures run it on one CPU: ``taskset -c 1 .venv/bin/python bench/delivery/profile_recipient.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
INTAKE = HERE.parent / "intake"
sys.path.insert(0, str(INTAKE))

from database import init_demo_home, scratch_database  # noqa: E402
from profile_serving import post_soap  # noqa: E402
from traffic import RECIPIENT, SENDER, SERVICE, SIGNATURE_TTL, sign_envelopes  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2000, help="deliveries per round and application (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating the two applications (3)")
    options = parser.parse_args(argv)
    if options.deliveries < 1 or options.rounds < 1:
        parser.error("--deliveries and --rounds must be at least 1")
    with (
        tempfile.TemporaryDirectory(prefix="recipient-profile-") as tmp,
        scratch_database(Path(tmp) / "data", None) as database_url,
    ):
        work = Path(tmp)
        init_demo_home(work, database_url, int(SIGNATURE_TTL.total_seconds()))
        from gateway.settings import Settings

        settings = Settings.from_env()
        anchors = (settings.keys_dir / "ca" / "ca.cert.pem",)
        requests = _deliveries(settings, options.deliveries)
        applications = {"SDK recipient": _sdk_recipient(anchors), "bare Flask": _bare_recipient()}
        spent: dict[str, list[float]] = {name: [] for name in applications}
        for application in applications.values():
            for request in requests[:200]:  # warm-up
                post_soap(application, request, 1)
        for _ in range(options.rounds):
            for name, application in applications.items():
                started = time.thread_time()
                for request in requests:
                    post_soap(application, request, 1)
                spent[name].append((time.thread_time() - started) / len(requests) * 1e6)
    print(f"{len(requests)} deliveries of {statistics.mean(map(len, requests)) / 1024:.1f} KB on average")
    for name, values in spent.items():
        print(
            f"{name:<13} CPU a delivery: {', '.join(f'{v:.0f}' for v in values)} us "
            f"(median {statistics.median(values):.0f})"
        )
    ratio = statistics.median(spent["SDK recipient"]) / statistics.median(spent["bare Flask"])
    print(f"SDK recipient / bare Flask: {ratio:.2f}")
    return 0


def _deliveries(settings: Any, count: int) -> list[bytes]:
    """``count`` SOAP requests of signed ``gw:Delivery`` elements, as the worker posts them."""
    from gateway.bootstrap import gateway_key_paths
    from gateway.delivery.forward import delivery_element
    from gateway.intake.soap import envelope
    from gateway.pki.keystore import PemKeyStore
    from gateway.security.signer import GatewaySigner

    key, cert = gateway_key_paths(settings.keys_dir)
    signer = GatewaySigner(PemKeyStore(key, cert, settings.key_passphrase))
    requests = []
    for message_id, original in sign_envelopes(settings.keys_dir, count):
        message = SimpleNamespace(  # the stored message's columns the Delivery names
            message_id=message_id,
            sender_id=SENDER,
            service=SERVICE,
            service_version="1.0",
            correlation_id=None,
            received_at=datetime.now(UTC),
        )
        stored = _Plain(original)
        requests.append(envelope(delivery_element(message, RECIPIENT, 1, signer, stored)))  # type: ignore[arg-type]
    return requests


class _Plain:
    """The store's payload cipher for one envelope kept in the clear (``open_envelope``)."""

    def __init__(self, envelope: bytes) -> None:
        self._envelope = envelope

    def open_envelope(self, _message: object) -> bytes:
        return self._envelope


def _sdk_recipient(anchors: tuple[Path, ...]) -> Any:
    from gateway.sdk.recipient import recipient_app

    return recipient_app(lambda _delivery: True, anchors)


def _bare_recipient() -> Any:
    from flask import Flask, Response, request

    from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS
    from gateway.sdk.recipient import acknowledgement
    from gateway.xmlparse import parse_untrusted

    bare = Flask("bare-recipient")
    message_id = f"{{{SOAP_ENV_NS}}}Body/{{{GATEWAY_NS}}}Delivery/{{{GATEWAY_NS}}}MessageId"

    @bare.post("/soap")
    def deliver() -> Response:
        root = parse_untrusted(request.get_data()).getroot()
        return Response(acknowledgement(root.findtext(message_id) or "", True), content_type="text/xml; charset=utf-8")

    return bare


if __name__ == "__main__":
    raise SystemExit(main())
