"""``gateway send`` and ``gateway keys revoke`` against a served gateway (real HTTP, real zeep)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.demo.season import CRL_RELOAD_SECONDS
from tests.conftest import EDUCATION_DEPARTMENT, EXAMPLES, UNIVERSITY
from tests.serving import served_gateway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    home = tmp_path_factory.mktemp("send") / "home"
    shutil.copytree(template_home, home)
    with served_gateway(home) as base:
        yield home, base


def gateway(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_DATA_DIR": str(home / "data"), "GATEWAY_KEYS_DIR": str(home / "keys")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_send_checks_and_saves_the_receipt(served: tuple[Path, str], tmp_path: Path) -> None:
    home, base = served
    receipt = tmp_path / "receipt.xml"
    result = gateway(
        home,
        "send",
        str(EXAMPLES / "destination-registration.xml"),
        "--as",
        UNIVERSITY,
        "--to",
        "education_department@110108",
        "--receipt-out",
        str(receipt),
        "--url",
        base,
    )
    assert result.returncode == 0, result.stderr
    assert "accepted" in result.stdout
    for part in ("Body", "Timestamp", "Routing"):
        assert f"receipt acknowledges {part}" in result.stdout
    assert b"<gw:Status>accepted</gw:Status>" in receipt.read_bytes()
    assert b"ds:SignatureValue" in receipt.read_bytes()


def test_send_exits_non_zero_with_the_fault_code(served: tuple[Path, str]) -> None:
    home, base = served
    result = gateway(
        home,
        "send",
        str(EXAMPLES / "destination-registration.xml"),
        "--as",
        UNIVERSITY,
        "--to",
        "91110000600037341L",
        "--url",
        base,
    )
    assert result.returncode == 2
    assert "refused: UNKNOWN_RECIPIENT" in result.stderr


def test_revoked_certificate_is_refused_in_the_running_gateway(served: tuple[Path, str]) -> None:
    home, base = served
    # The last test of the module: the university's certificate stays revoked.
    document = str(EXAMPLES / "destination-registration.xml")
    before = gateway(home, "send", document, "--as", UNIVERSITY, "--to", EDUCATION_DEPARTMENT, "--url", base)
    assert before.returncode == 0, before.stderr
    revoked = gateway(home, "keys", "revoke", UNIVERSITY)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked serial" in revoked.stdout
    time.sleep(CRL_RELOAD_SECONDS)  # a running gateway re-reads the revocation list once a second
    after = gateway(home, "send", document, "--as", UNIVERSITY, "--to", EDUCATION_DEPARTMENT, "--url", base)
    assert after.returncode == 2
    assert "refused: CERT_REVOKED" in after.stderr
