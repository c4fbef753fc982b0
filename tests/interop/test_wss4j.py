"""The Java sender of examples/java, signing with Apache WSS4J as Debian packages it, against a served gateway.

``examples/java/Wss4jSender.java`` keeps WSS4J's defaults where the gateway allows them (exclusive
C14N with InclusiveNamespaces PrefixLists, its own wsu:Ids, its Timestamp) and checks the gateway's
signed answer with WSS4J. It needs a JDK and Debian's ``libwss4j-java`` (``.ci/run`` installs
both): without them this test skips, under CI=true it fails.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.settings import PROJECT_ROOT
from tests.conftest import EDUCATION_DEPARTMENT, PRIVATE_EMPLOYER, UNIVERSITY, require

pytestmark = pytest.mark.slow
SENDER = PROJECT_ROOT / "examples" / "java" / "Wss4jSender.java"
JARS = ("wss4j.jar", "xmlsec.jar", "commons-logging.jar", "slf4j-api.jar", "slf4j-nop.jar")
CLASSPATH = ":".join(f"/usr/share/java/{jar}" for jar in JARS)


def _java_with_wss4j() -> None:
    if shutil.which("java") is None:
        raise FileNotFoundError("no java: install default-jdk-headless")
    missing = [jar for jar in JARS if not Path("/usr/share/java", jar).exists()]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(missing)}: install libwss4j-java")


def send(gateway_url: str, home: Path, recipient: str) -> subprocess.CompletedProcess[str]:
    keys = home / "keys"
    participant = keys / "participants" / UNIVERSITY
    return subprocess.run(
        [
            "java", "-cp", CLASSPATH, str(SENDER), gateway_url, UNIVERSITY, recipient,
            str(PROJECT_ROOT / "examples" / "destination-registration.xml"),
            str(participant / "key.pem"), str(participant / "cert.pem"), str(keys / "ca" / "ca.cert.pem"),
        ],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_wss4j_signs_a_message_the_gateway_accepts_and_checks_the_signed_answer(
    gateway_url: str, served_home: Path
) -> None:
    require("Java with Debian's libwss4j-java", _java_with_wss4j)
    result = send(gateway_url, served_home, EDUCATION_DEPARTMENT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "answer signature verified by WSS4J" in result.stdout
    assert "status accepted" in result.stdout


def test_a_refusal_reaches_the_java_sender_as_a_signed_fault_with_its_code(gateway_url: str, served_home: Path) -> None:
    require("Java with Debian's libwss4j-java", _java_with_wss4j)
    result = send(gateway_url, served_home, PRIVATE_EMPLOYER)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "answer signature verified by WSS4J" in result.stdout
    assert "refused: ACCESS_DENIED" in result.stdout
