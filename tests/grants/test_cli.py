"""``gateway grants list|uses`` on a gateway home whose graduate granted and was verified."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from gateway.cli import main
from tests.conftest import AGENCY_CHAOYANG, HUKOU_OFFICE, Signer
from tests.graduates.helpers import LI_MING, activated
from tests.grants.helpers import ask, grant, verification_request


def run(home: Path, *args: str) -> tuple[int, str]:
    env = {"GATEWAY_DATA_DIR": str(home / "data"), "GATEWAY_KEYS_DIR": str(home / "keys")}
    result = CliRunner().invoke(main, ["grants", *args], env=env)
    return result.exit_code, result.output


def test_grants_and_their_uses(app: Flask, client: FlaskClient, sign: Signer, home: Path) -> None:
    account = activated(app, client, sign)
    used = grant(app, account, max_uses=2)
    other = grant(app, account, verifier_id=AGENCY_CHAOYANG)
    assert ask(client, sign, verification_request(used.token)).fault is None
    assert ask(client, sign, verification_request(other.token)).fault == "AUTHORISATION_WRONG_VERIFIER"
    code, output = run(home, "list", "--json")
    assert code == 0, output
    listed = {row["grant"]: row for row in json.loads(output)}
    assert (listed[used.grant.id]["state"], listed[used.grant.id]["uses"]) == ("active", 1)
    assert listed[other.grant.id]["verifier"] == AGENCY_CHAOYANG
    code, output = run(home, "list", "--verifier", HUKOU_OFFICE)
    assert code == 0 and used.grant.id in output and other.grant.id not in output
    code, output = run(home, "uses", "--refused", "--json")
    [refused] = json.loads(output)
    assert (refused["grant"], refused["fault"], refused["verifier"]) == (
        other.grant.id,
        "AUTHORISATION_WRONG_VERIFIER",
        HUKOU_OFFICE,
    )
    code, output = run(home, "uses")
    assert code == 0 and "2 use(s)" in output
    assert LI_MING.identity_number not in output and LI_MING.name not in output
