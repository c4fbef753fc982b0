"""The messages of the benchmark: SOAP envelopes around the example documents, each with its own id.

Every envelope carries a fresh message id (``wrap`` draws a UUID), so the gateway accepts each
one exactly once; a benchmark round therefore needs its own slice of envelopes. When the gateway
verifies WS-Security signatures (``gateway.sdk.signing`` exists), each envelope is signed with
its sender's demo key, as a participant would; signing is spread over one process per core.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from lxml import etree

from gateway.sdk.envelope import wrap
from gateway.xmlparse import parse_untrusted


@dataclass(frozen=True)
class Route:
    """One kind of message of the mix: a document, the service it belongs to, who sends it to whom."""

    document: bytes
    service: str
    sender: str
    recipient: str


def load_traffic(traffic_file: Path, examples_dir: Path) -> list[Route]:
    """The routes listed in ``traffic_file``; the service is the local name of the document's root.

    Raises ``OSError`` or ``KeyError`` when the file or an example it names is missing or malformed.
    """
    listed = json.loads(traffic_file.read_text(encoding="utf-8"))["messages"]
    routes = []
    for entry in listed:
        document = (examples_dir / entry["document"]).read_bytes()
        service = etree.QName(parse_untrusted(document).getroot()).localname
        routes.append(Route(document, service, entry["sender"], entry["recipient"]))
    return routes


SIGNATURE_TTL = timedelta(hours=1)  # the run's gateway accepts Timestamps this old (run.py sets it)
_CHUNK = 500


def signing_available() -> bool:
    """True when the gateway has message security, hence requires signed envelopes."""
    return importlib.util.find_spec("gateway.sdk.signing") is not None


def generate(routes: list[Route], count: int, keys_dir: Path | None = None) -> list[bytes]:
    """``count`` envelopes, the routes taken in turn, each with a new message id; signed with the
    senders' keys under ``keys_dir`` (``participants/<id>/key.pem``, ``cert.pem``) when it is given."""
    chosen = [routes[i % len(routes)] for i in range(count)]
    envelopes = [
        wrap(route.document, sender=route.sender, recipient=route.recipient, service=route.service)
        for route in chosen
    ]
    if keys_dir is None:
        return envelopes
    senders = [route.sender for route in chosen]
    jobs = [
        (keys_dir, senders[i:i + _CHUNK], envelopes[i:i + _CHUNK]) for i in range(0, count, _CHUNK)
    ]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return [signed for chunk in pool.map(_sign_chunk, jobs) for signed in chunk]


def _sign_chunk(job: tuple[Path, Sequence[str], Sequence[bytes]]) -> list[bytes]:
    from cryptography import x509

    from gateway.pki.keystore import load_private_key
    from gateway.sdk.signing import sign_envelope_bytes  # type: ignore[import-not-found,unused-ignore]

    keys_dir, senders, envelopes = job
    credentials: dict[str, tuple[Any, x509.Certificate]] = {}
    signed = []
    for sender, envelope in zip(senders, envelopes, strict=True):
        if sender not in credentials:
            folder = keys_dir / "participants" / sender
            certificate = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
            credentials[sender] = (load_private_key(folder / "key.pem"), certificate)
        key, certificate = credentials[sender]
        signed.append(sign_envelope_bytes(envelope, key, certificate, ttl=SIGNATURE_TTL))
    return signed
