"""The messages of the benchmark: SOAP envelopes around the example documents, each with its own id.

Every envelope carries a fresh message id (``wrap`` draws a UUID), so the gateway accepts each
one exactly once; a benchmark round therefore needs its own slice of envelopes. When the gateway
verifies WS-Security signatures (``gateway.sdk.signing`` exists), each envelope is signed with
its sender's demo key, as a participant would; signing is spread over one process per core.

**One graduate per registration.** A message of ``traffic.json`` marked ``"graduate": "new"`` (the
destination registration) is about a new graduate each time: its registration id, identity
number (valid check digit), student number, transfer and verification numbers are made from the
graduate's number. One marked ``"graduate": "registered"`` (the filing) is about the graduate
that the ``new`` message of ``LAG_CYCLES`` cycles earlier in the same segment registered, and
may only be sent once that message is answered (``Segment.after``: the load generators wait for
it; with ``LAG_CYCLES`` of distance they seldom have to). In a round's first ``LAG_CYCLES``
cycles it is about a graduate of the warm-up (which is sent whole before any round), and in the
warm-up's about graduate 0, the example's own, whom the run's very first message registers (the
warm-up sends it first, alone). Without this every message would update one registration row,
and the bench would measure its own hot row, not the gateway's.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from lxml import etree
from stdnum.cn import ric

from gateway.sdk.envelope import wrap
from gateway.xmlparse import parse_untrusted

LAG_CYCLES = 16  # a "registered" message follows its "new" one by this many cycles of the mix


@dataclass(frozen=True)
class Route:
    """One kind of message of the mix: a document, the service it belongs to, who sends it to whom,
    and whom it is about (``graduate``: "new", "registered" or "" for the document as it is)."""

    document: bytes
    service: str
    sender: str
    recipient: str
    graduate: str = ""


@dataclass(frozen=True)
class Segment:
    """The envelopes of one warm-up or round, and for each the index (in this segment) of the
    envelope that must have been answered before it is sent, if any."""

    bodies: list[bytes]
    after: list[int | None]


# what makes graduate ``g`` (g >= 1) distinct, by the local name of the element
_GRADUATE_FIELDS = {
    "RegistrationId": lambda g: f"REG-BENCH-{g:08d}",
    "IdentityNumber": lambda g: _identity_number(g),
    "StudentNumber": lambda g: f"B{g:09d}",
    "TransferNumber": lambda g: f"ZD{g:017d}",
    "VerificationNumber": lambda g: f"HYB{g:013d}",
}


def _identity_number(graduate: int) -> str:
    """A valid resident identity number (GB 11643) of region 110105, distinct for each graduate."""
    born = date(2000, 1, 1) + timedelta(days=graduate // 1000)
    first17 = f"110105{born:%Y%m%d}{graduate % 1000:03d}"
    return first17 + str(ric.calc_check_digit(first17 + "0"))


def about(document: bytes, graduate: int) -> bytes:
    """``document`` about graduate ``graduate`` (0: the document as it is)."""
    if graduate == 0:
        return document
    root = parse_untrusted(document).getroot()
    for element in root.iter():
        if isinstance(element.tag, str) and (make := _GRADUATE_FIELDS.get(etree.QName(element).localname)):
            element.text = make(graduate)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def load_traffic(traffic_file: Path, examples_dir: Path) -> list[Route]:
    """The routes listed in ``traffic_file``; the service is the local name of the document's root.

    Raises ``OSError`` or ``KeyError`` when the file or an example it names is missing or malformed.
    """
    listed = json.loads(traffic_file.read_text(encoding="utf-8"))["messages"]
    routes = []
    for entry in listed:
        document = (examples_dir / entry["document"]).read_bytes()
        service = etree.QName(parse_untrusted(document).getroot()).localname
        routes.append(Route(document, service, entry["sender"], entry["recipient"], entry.get("graduate", "")))
    return routes


SIGNATURE_TTL = timedelta(hours=1)  # the run's gateway accepts Timestamps this old (run.py sets it)
_CHUNK = 500


def signing_available() -> bool:
    """True when the gateway has message security, hence requires signed envelopes."""
    return importlib.util.find_spec("gateway.sdk.signing") is not None


def plan(routes: list[Route], sizes: Sequence[int]) -> list[tuple[list[tuple[Route, int]], list[int | None]]]:
    """For segments of ``sizes`` envelopes, the routes taken in turn: each envelope's route and
    graduate, and what it must wait for (see the module's docstring)."""
    segments = []
    cycle = 0  # cycles of the mix so far, over all segments: the "new" graduate's number
    warmup_cycles = max(1, sizes[0] // len(routes)) if sizes else 1  # its graduates: 0 .. warmup_cycles - 1
    for number, size in enumerate(sizes):
        chosen: list[tuple[Route, int]] = []
        after: list[int | None] = []
        new_at: dict[int, tuple[int, int]] = {}  # cycle in this segment -> (graduate, index)
        for index in range(size):
            route = routes[index % len(routes)]
            local_cycle = index // len(routes)
            graduate, wait = 0, None
            if route.graduate == "new":
                graduate = cycle + local_cycle
                new_at[local_cycle] = (graduate, index)
            elif route.graduate == "registered" and local_cycle - LAG_CYCLES in new_at:
                graduate, wait = new_at[local_cycle - LAG_CYCLES]
            elif route.graduate == "registered" and number > 0:
                graduate = local_cycle % warmup_cycles
            chosen.append((route, graduate))
            after.append(wait)
        cycle += -(-size // len(routes))
        segments.append((chosen, after))
    return segments


def generate(routes: list[Route], sizes: Sequence[int], keys_dir: Path | None = None) -> list[Segment]:
    """Segments of ``sizes`` envelopes (the warm-up, then each round), the routes taken in turn,
    each with a new message id and about its graduate; signed with the senders' keys under
    ``keys_dir`` (``participants/<id>/key.pem``, ``cert.pem``) when it is given."""
    planned = plan(routes, sizes)
    chosen = [pair for segment, _ in planned for pair in segment]
    envelopes = [
        wrap(about(route.document, graduate), sender=route.sender, recipient=route.recipient, service=route.service)
        for route, graduate in chosen
    ]
    if keys_dir is not None:
        envelopes = _sign(envelopes, [route.sender for route, _ in chosen], keys_dir)
    segments, start = [], 0
    for segment, after in planned:
        segments.append(Segment(envelopes[start : start + len(segment)], after))
        start += len(segment)
    return segments


def _sign(envelopes: list[bytes], senders: list[str], keys_dir: Path) -> list[bytes]:
    count = len(envelopes)
    jobs = [(keys_dir, senders[i : i + _CHUNK], envelopes[i : i + _CHUNK]) for i in range(0, count, _CHUNK)]
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
