"""The commands and code of README.md and docs/ run as printed, against a served gateway.

A fenced ``sh`` or ``python`` block that a reader is meant to run comes right after a
``<!-- test:NAME -->`` comment; one that cannot run here comes after ``<!-- not run: WHY -->``,
and the reason is in the page. Every ``sh``/``python`` block carries one of the two (a test checks).

The ``test:`` blocks of a page run in order in a copy of a ``make run`` home (data, keys, the
examples and ``.venv`` beside them) while a gateway serves that home: the shell blocks as one bash
session (``set -euo pipefail``), the Python blocks in one namespace, as a reader pastes them. The
only change made to them: ``http://127.0.0.1:8080`` becomes the served gateway's address (and
``GATEWAY_PORT`` is its port). docs/integration.md's blocks are run by tests/test_integration_doc.py.

Every ``xmlsec1 --verify`` receipt check printed in the docs must also refuse a forged receipt:
``test_every_printed_receipt_check_refuses_a_forged_receipt`` runs each one on a genuine receipt and
on one altered and re-signed with a bare key of its own.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from lxml import etree

from gateway.settings import PROJECT_ROOT
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, require
from tests.serving import served_gateway

PAGES = sorted(
    [
        PROJECT_ROOT / "README.md",
        PROJECT_ROOT / "DEVELOPERS.md",
        *(PROJECT_ROOT / "docs").glob("*.md"),
        *(PROJECT_ROOT / "examples").glob("*/README.md"),
    ]
)
RUN_HERE = [
    PROJECT_ROOT / "README.md",
    PROJECT_ROOT / "docs" / "audit.md",
    PROJECT_ROOT / "docs" / "operations.md",
    PROJECT_ROOT / "examples" / "signed" / "README.md",
]
FENCE = re.compile(r"^```(?P<language>sh|python)\n(?P<code>.*?)\n```", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"<!-- (?:test:(?P<name>[\w-]+)|not run: (?P<reason>[^>]+\S)) -->\n$")
PRINTED_URL = "http://127.0.0.1:8080"


def blocks(page: Path) -> list[tuple[str | None, str | None, str, str]]:
    """(test name, not-run reason, language, code) of every sh/python block of ``page``."""
    text = page.read_text(encoding="utf-8")
    found = []
    for fence in FENCE.finditer(text):
        before = text[: fence.start()]
        marker = MARKER.search(before[before.rfind("<!--") :]) if "<!--" in before else None
        name = marker["name"] if marker else None
        reason = marker["reason"] if marker else None
        found.append((name, reason, fence["language"], fence["code"]))
    return found


def test_every_runnable_block_is_run_or_says_why_not() -> None:
    unmarked = [
        f"{page.relative_to(PROJECT_ROOT)}: {code.splitlines()[0]}"
        for page in PAGES
        for name, reason, _language, code in blocks(page)
        if name is None and reason is None
    ]
    assert unmarked == []


@pytest.fixture(scope="module")
def reader_home(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A `make run` home as a reader has it: data, keys, examples, .venv; served for the module."""
    home = tmp_path_factory.mktemp("reader") / "project"
    shutil.copytree(template_home, home)
    shutil.copytree(PROJECT_ROOT / "examples", home / "examples", ignore=shutil.ignore_patterns("node_modules"))
    (home / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    with served_gateway(home) as base:
        yield home, base


def reader_environment(base: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `gateway`, `python3`
    env["GATEWAY_PORT"] = base.rsplit(":", 1)[1]
    return env


@pytest.mark.slow
@pytest.mark.parametrize("page", RUN_HERE, ids=[str(p.relative_to(PROJECT_ROOT)) for p in RUN_HERE])
def test_the_pages_blocks_run_as_printed(
    page: Path, reader_home: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, base = reader_home
    tested = [(name, language, code) for name, _reason, language, code in blocks(page) if name]
    assert tested, f"{page} has no tested block"
    if any("xmlsec1" in code for _name, _language, code in tested):
        require("xmlsec1", lambda: subprocess.run(["xmlsec1", "--version"], capture_output=True, check=True))
    shell = "\n".join(code.replace(PRINTED_URL, base) for _name, language, code in tested if language == "sh")
    if shell:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", shell],
            cwd=home,
            env=reader_environment(base),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"{page}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr
    monkeypatch.chdir(home)
    namespace: dict[str, Any] = {}
    for name, language, code in tested:
        if language == "python":
            exec(compile(code.replace(PRINTED_URL, base), f"{page.name}:{name}", "exec"), namespace)  # noqa: S102


# --- every printed receipt check refuses a forged receipt ------------------------------------------


def printed_receipt_checks() -> list[tuple[str, list[str]]]:
    """Every ``xmlsec1 --verify`` command of the pages that checks a gw:Receipt, as an argument list."""
    commands = []
    for page in [*PAGES, PROJECT_ROOT / "docs" / "integration.md"]:
        text = page.read_text(encoding="utf-8").replace("\\\n", " ")
        for match in re.finditer(r"xmlsec1 --verify[^`\n]*(?:\n[^`\n]+)*?response\.xml", text):
            command = " ".join(match.group(0).split())
            if "gateway:1:Receipt" in command:
                commands.append((f"{page.relative_to(PROJECT_ROOT)}: {command}", shlex.split(command)))
    return commands


RECEIPT_CHECKS = printed_receipt_checks()


def test_the_docs_print_receipt_checks() -> None:
    assert len(RECEIPT_CHECKS) >= 3  # protocol.md, signing.md, examples/signed/README.md


@pytest.mark.slow
@pytest.mark.parametrize(("where", "command"), RECEIPT_CHECKS, ids=[w for w, _ in RECEIPT_CHECKS])
def test_every_printed_receipt_check_refuses_a_forged_receipt(
    where: str, command: list[str], reader_home: tuple[Path, str], tmp_path: Path
) -> None:
    require("xmlsec1", lambda: subprocess.run(["xmlsec1", "--version"], capture_output=True, check=True))
    home, base = reader_home
    genuine, forged = tmp_path / "genuine", tmp_path / "forged"
    genuine.mkdir()
    forged.mkdir()
    response = send_for_a_receipt(home, base)
    (genuine / "response.xml").write_bytes(response)
    (forged / "response.xml").write_bytes(forge(response, tmp_path))
    for folder in (genuine, forged):
        shutil.copy(home / "keys" / "ca" / "ca.cert.pem", folder / "ca.cert.pem")
    run = [shutil.which("xmlsec1") or "xmlsec1", *command[1:]]
    ok = subprocess.run(run, cwd=genuine, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, f"{where} refuses a genuine receipt: {ok.stderr}"
    refused = subprocess.run(run, cwd=forged, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0, f"{where} accepts a receipt forged with a bare key"


def send_for_a_receipt(home: Path, base: str) -> bytes:
    from gateway.sdk.envelope import wrap
    from gateway.sdk.signing import sign_envelope_bytes
    from tests.conftest import credentials

    found = credentials(home / "keys", UNIVERSITY)
    envelope = wrap(
        (PROJECT_ROOT / "examples" / "destination-registration.xml").read_bytes(),
        sender=UNIVERSITY,
        service="DestinationRegistration",
        recipient=EDUCATION_DEPARTMENT,
    )
    signed = sign_envelope_bytes(envelope, found.key, found.certificate)
    answer = requests.post(f"{base}/soap", data=signed, headers={"Content-Type": "text/xml"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.content


def forge(response: bytes, tmp_path: Path) -> bytes:
    """The response with the receipt's status changed and the receipt re-signed by a key of our own,
    shown as a bare ds:KeyValue: what xmlsec1 believes without ``--enabled-key-data x509``."""
    ns = {"gw": "urn:gradex:gateway:1", "ds": "http://www.w3.org/2000/09/xmldsig#"}
    root = etree.fromstring(response)
    receipt = root.find(".//gw:Receipt", ns)
    assert receipt is not None
    receipt.find("gw:Status", ns).text = "forged"  # type: ignore[union-attr]
    signature = receipt.find("ds:Signature", ns)
    assert signature is not None
    signature.find("ds:SignedInfo/ds:SignatureMethod", ns).set(  # type: ignore[union-attr]
        "Algorithm", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    )
    for node in [*signature.iterfind(".//ds:DigestValue", ns), signature.find("ds:SignatureValue", ns)]:
        node.text = ""  # type: ignore[union-attr]
    info = signature.find("ds:KeyInfo", ns)
    assert info is not None
    info.clear()
    etree.SubElement(info, "{http://www.w3.org/2000/09/xmldsig#}KeyValue")
    template, signed, key = tmp_path / "template.xml", tmp_path / "forged.xml", tmp_path / "forger.pem"
    template.write_bytes(etree.tostring(root))
    key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    xpath = "//*[local-name()='Receipt']/*[local-name()='Signature']"
    result = subprocess.run(
        ["xmlsec1", "--sign", "--privkey-pem", str(key), "--id-attr:Id", "urn:gradex:gateway:1:Receipt",
         "--node-xpath", xpath, "--output", str(signed), str(template)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return signed.read_bytes()
