"""A served gateway's ``/metrics`` (gunicorn, multiprocess mode) against the shipped alert rules and
Grafana dashboard, checked with Prometheus' own ``promtool``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from gateway.sdk.envelope import wrap
from gateway.settings import PROJECT_ROOT
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, example, free_port, require
from tests.serving import served_gateway

pytestmark = pytest.mark.slow

ALERTS = PROJECT_ROOT / "docs" / "prometheus" / "alerts.yml"
DASHBOARD = PROJECT_ROOT / "docs" / "grafana" / "gateway.json"
TOKEN = "served-scrape-token"


def promtool() -> str:
    def find() -> None:
        if shutil.which("promtool") is None:
            raise FileNotFoundError("promtool (Debian package prometheus) is not installed")

    require("promtool", find)
    return "promtool"


def test_the_alert_rules_are_valid_and_fire_as_intended() -> None:
    tool = promtool()
    checked = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [tool, "test", "rules", "alerts_test.yml"], capture_output=True, text=True, cwd=Path(__file__).parent
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def names_in(expressions: list[str]) -> set[str]:
    """The gateway metric names an expression reads, as a scrape shows them (histogram parts named)."""
    return {name for expr in expressions for name in re.findall(r"\bgateway_[a-z_]+", expr)}


def scraped_names(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_a_served_gateway_is_scraped(home: Path, sign: Signer) -> None:
    tool = promtool()
    metrics_port = free_port()
    env = {"GATEWAY_METRICS_PORT": str(metrics_port), "GATEWAY_METRICS_TOKEN": TOKEN}
    message = sign(
        wrap(
            example("destination-registration"),
            sender=UNIVERSITY,
            recipient=EDUCATION_DEPARTMENT,
            service="DestinationRegistration",
        ),
        as_=UNIVERSITY,
    )
    with served_gateway(home, env) as base:
        for body in (message, b"<not-xml"):
            requests.post(f"{base}/soap", data=body, headers={"Content-Type": "text/xml"}, timeout=30)
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 404
        on_main = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert on_main.status_code == 200
        own_port = f"http://127.0.0.1:{metrics_port}"
        deadline = time.monotonic() + 30
        while True:  # until the served sequencer has signed its first checkpoint (every 5 s)
            scrape = requests.get(f"{own_port}/metrics", timeout=10)
            assert scrape.status_code == 200
            if re.search("^gateway_audit_checkpoint_age_seconds ", scrape.text, re.M) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert requests.get(f"{own_port}/healthz", timeout=10).status_code == 404
        assert requests.get(f"{own_port}/soap?wsdl", timeout=10).status_code == 404
        # The intake is answered in front of the app's hooks (gateway.intake.endpoint), but not here.
        on_own = requests.post(f"{own_port}/soap", data=message, headers={"Content-Type": "text/xml"}, timeout=30)
        assert on_own.status_code == 404
    text = scrape.text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    service = ("service", "DestinationRegistration")
    accepted = ("gateway_messages_total", (("code", ""), ("outcome", "accepted"), service))
    refused = ("gateway_messages_total", (("code", "XML_MALFORMED"), ("outcome", "refused"), ("service", "unknown")))
    assert samples[accepted] == 1 and samples[refused] == 1  # from the gunicorn worker's files
    assert samples[("gateway_intake_stage_seconds_count", (("stage", "verify_signature"),))] == 1
    assert samples[("gateway_intake_stage_seconds_count", (("stage", "parse"),))] == 2

    linted = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr

    # Every metric the alert rules and the dashboard read is one the gateway serves.
    found = scraped_names(text)
    rules = [ALERTS.read_text()]  # metric names are the only lower-case gateway_ words in it
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    missing = (names_in(rules) | names_in(panels)) - found
    assert not missing, f"read by the rules or the dashboard but not served: {sorted(missing)}"
