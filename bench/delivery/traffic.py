"""The benchmark's messages and the load that sends them.

Verification requests from the hukou office to the education department (the recipient the run
makes a push one), each with its own message id, signed in advance with the sender's demo key on
every core; the signatures' Timestamps must stay acceptable for the run, hence a one-hour TTL and
``GATEWAY_TIMESTAMP_MAX_AGE=3600`` for the gateways.
"""

from __future__ import annotations

import http.client
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from processes import LOOPBACK

ROOT = Path(__file__).resolve().parent.parent.parent
# university -> education department: a registration is accepted however often it is sent (a
# verification request needs a graduate's grant, and is answered by the gateway, not delivered).
SENDER, RECIPIENT = "12110108400000008J", "11110000000000001R"
SERVICE = "DestinationRegistration"
SIGNATURE_TTL = timedelta(hours=1)


def sign_envelopes(keys_dir: Path, count: int) -> list[tuple[str, bytes]]:
    """``count`` signed destination registrations (message id, envelope), signed on every core."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    chunks = [(keys_dir, ids[i : i + 200]) for i in range(0, count, 200)]
    # "spawn", not fork: the memory run signs its next chunk while other threads of this process
    # parse, and a child forked while one of them held a compiled XPath's lock (lxml keeps one per
    # evaluator) waited on it for ever.
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        signed = [envelope for chunk in pool.map(_sign_chunk, chunks) for envelope in chunk]
    return list(zip(ids, signed, strict=True))


def _sign_chunk(job: tuple[Path, list[str]]) -> list[bytes]:
    from cryptography import x509

    from gateway.pki.keystore import load_private_key
    from gateway.sdk.envelope import wrap
    from gateway.sdk.signing import sign_envelope_bytes

    keys_dir, ids = job
    folder = keys_dir / "participants" / SENDER
    key = load_private_key(folder / "key.pem")
    certificate = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
    document = (ROOT / "examples" / "destination-registration.xml").read_bytes()
    return [
        sign_envelope_bytes(
            wrap(document, sender=SENDER, recipient=RECIPIENT, service=SERVICE, message_id=m),
            key,
            certificate,
            ttl=SIGNATURE_TTL,
        )
        for m in ids
    ]


# --- the sending side ---------------------------------------------------------------------------


def send_all(port: int, envelopes: Sequence[tuple[str, bytes]], connections: int) -> dict[str, Any]:
    """POST every envelope once over ``connections`` keep-alive connections; the accepted ones' ids
    (``accepted_ids``), the refusals and the intake rate."""
    pending = iter(envelopes)
    lock = threading.Lock()
    failures: list[str] = []
    accepted: list[str] = []

    def sender() -> None:
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
        try:
            while True:
                with lock:
                    item = next(pending, None)
                if item is None:
                    return
                try:
                    connection.request("POST", "/soap", item[1], {"Content-Type": "text/xml; charset=utf-8"})
                    answer = connection.getresponse()
                    body = answer.read()
                except (OSError, http.client.HTTPException) as exc:  # counted; the run then fails its check
                    connection.close()
                    with lock:
                        failures.append(f"{item[0]}: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    if answer.status != 200 or b":Fault>" in body:
                        failures.append(f"{item[0]}: HTTP {answer.status} {body[:300]!r}")
                    else:
                        accepted.append(item[0])
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=sender) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return {
        "sent": len(envelopes),
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "seconds": seconds,
        "accepted_per_s": len(accepted) / seconds,
        "accepted_ids": accepted,
    }
