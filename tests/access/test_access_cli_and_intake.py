"""``gateway access`` overrides take effect at the SOAP intake, and refusals name the rule."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from flask.testing import FlaskClient
from lxml import etree

from gateway.cli import main
from gateway.sdk.envelope import wrap
from tests.conftest import EDUCATION_DEPARTMENT, PRIVATE_EMPLOYER, UNIVERSITY, Signer, example

NS = {"gw": "urn:gradex:gateway:1"}


def run(home: Path, *args: str) -> Result:
    env = {"GATEWAY_DATA_DIR": str(home / "data"), "GATEWAY_KEYS_DIR": str(home / "keys")}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def registration(sign: Signer, sender: str) -> bytes:
    data = wrap(
        example("destination-registration"),
        sender=sender,
        recipient=EDUCATION_DEPARTMENT,
        service="DestinationRegistration",
    )
    return sign(data, as_=sender)


def fault(client: FlaskClient, data: bytes) -> tuple[str | None, str | None]:
    body = etree.fromstring(client.post("/soap", data=data, content_type="text/xml").data)
    return (
        body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS),
        body.findtext(".//gw:FaultDetail/gw:Message", namespaces=NS),
    )


def test_refusal_names_the_rule_and_a_grant_opens_the_way(client: FlaskClient, home: Path, sign: Signer) -> None:
    code, message = fault(client, registration(sign, PRIVATE_EMPLOYER))
    assert code == "ACCESS_DENIED"
    assert "R-REG-1" in (message or "")
    granted = run(
        home,
        "access",
        "grant",
        PRIVATE_EMPLOYER,
        "DestinationRegistration",
        "--to",
        EDUCATION_DEPARTMENT,
        "--reason",
        "pilot of employer-filed registrations",
    )
    assert granted.exit_code == 0, granted.output
    assert fault(client, registration(sign, PRIVATE_EMPLOYER)) == (None, None)


def test_a_denial_stops_a_participant_the_matrix_allows(client: FlaskClient, home: Path, sign: Signer) -> None:
    assert fault(client, registration(sign, UNIVERSITY)) == (None, None)
    denied = run(home, "access", "deny", UNIVERSITY, "*", "--reason", "suspended pending review")
    assert denied.exit_code == 0, denied.output
    code, message = fault(client, registration(sign, UNIVERSITY))
    assert code == "ACCESS_DENIED" and "suspended pending review" in (message or "")
    listed = json.loads(run(home, "access", "list", "--json").output)
    assert [(o["participant"], o["effect"], o["service"]) for o in listed] == [(UNIVERSITY, "deny", "*")]
    assert run(home, "access", "remove", str(listed[0]["id"])).exit_code == 0
    assert fault(client, registration(sign, UNIVERSITY)) == (None, None)


def test_bad_override_input_names_the_field(home: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["access", "grant", UNIVERSITY, "NoSuchService", "--reason", "x"],
        env={"GATEWAY_DATA_DIR": str(home / "data"), "GATEWAY_KEYS_DIR": str(home / "keys")},
    )
    assert result.exit_code == 1
    assert "service: 'NoSuchService' is not a service of the WSDL" in result.output
    rules = json.loads(run(home, "access", "rules", "--json").output)
    assert {r["rule"] for r in rules} >= {"R-REG-1", "R-ARC-2", "R-VER-1"}
