"""A Node.js agency client (node-soap, ``examples/node/gateway-client.js``) against a served gateway.

Optional: it needs ``node`` and the example's pinned packages (``npm ci --prefix examples/node``,
which ``.ci/run`` runs when node is there). Without node it skips; with node under CI=true, missing
packages fail it. The test never downloads anything.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import PROJECT_ROOT
from tests.conftest import EDUCATION_DEPARTMENT, HUKOU_OFFICE, UNIVERSITY, in_ci

NODE_EXAMPLE = PROJECT_ROOT / "examples" / "node"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.skip("node is not installed: the node-soap example cannot run")
    if not (NODE_EXAMPLE / "node_modules" / "soap" / "package.json").exists():
        reason = "node-soap is not installed: run `npm ci --prefix examples/node` (.ci/run does)"
        if in_ci():
            pytest.fail(f"{reason}; CI must have it")
        pytest.skip(reason)
    return found


def run(node: str, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [node, "--no-deprecation", "gateway-client.js", *args],
        cwd=NODE_EXAMPLE,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def keys(home: Path, participant: str) -> tuple[str, str]:
    folder = home / "keys" / "participants" / participant
    return str(folder / "key.pem"), str(folder / "cert.pem")


def test_node_soap_sends_fetches_and_acknowledges(node: str, gateway_url: str, served_home: Path) -> None:
    document = str(PROJECT_ROOT / "examples" / "destination-registration.xml")
    sent = run(node, "send", gateway_url, UNIVERSITY, EDUCATION_DEPARTMENT, document, *keys(served_home, UNIVERSITY))
    assert sent["status"] == "accepted" and sent["recipient"] == EDUCATION_DEPARTMENT
    fetched = run(node, "fetch", gateway_url, EDUCATION_DEPARTMENT, *keys(served_home, EDUCATION_DEPARTMENT))
    taken = {m["MessageId"]: m for m in fetched["fetched"]}
    assert taken[sent["messageId"]]["Sender"] == UNIVERSITY
    assert taken[sent["messageId"]]["Service"] == "DestinationRegistration"
    assert taken[sent["messageId"]]["Acknowledged"] == "acknowledged"


def test_node_soap_sees_the_fault_code(node: str, gateway_url: str, served_home: Path) -> None:
    document = str(PROJECT_ROOT / "examples" / "destination-registration.xml")
    wrong_certificate = run(
        node, "send", gateway_url, UNIVERSITY, EDUCATION_DEPARTMENT, document, *keys(served_home, HUKOU_OFFICE)
    )
    assert wrong_certificate["fault"] == "CERT_NOT_REGISTERED"
    not_allowed = run(
        node, "send", gateway_url, HUKOU_OFFICE, EDUCATION_DEPARTMENT, document, *keys(served_home, HUKOU_OFFICE)
    )
    assert not_allowed["fault"] == "ACCESS_DENIED"
