"""bench/intake's baselines (``bench/intake/baseline_app.py``) refuse what they claim to check.

A baseline that accepted everything would make every gateway/baseline ratio meaningless: these
tests hold each mode to its verdicts on a signed envelope, a tampered one, one signed with another
participant's key, and one whose Timestamp is an hour old (which only the gateway's own check,
``xsd+dsig``, looks at).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest
from flask.testing import FlaskClient

from gateway.errors import ConfigurationError
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from tests.bench_modules import load_bench_module
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, example


def _baseline_module() -> ModuleType:
    return load_bench_module("intake/baseline_app.py")


@pytest.fixture
def baseline(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], FlaskClient]:
    """``baseline(mode)``: a test client of that baseline on the test's demo home, configured as run.py does."""
    module = _baseline_module()

    def client(mode: str) -> FlaskClient:
        monkeypatch.setenv("BENCH_BASELINE", mode)
        monkeypatch.setenv("BENCH_CERTS_DIR", str(settings.keys_dir / "participants"))
        monkeypatch.setenv("GATEWAY_KEYS_DIR", str(settings.keys_dir))
        monkeypatch.setenv("GATEWAY_DATA_DIR", str(settings.data_dir))
        return module.create_app().test_client()  # type: ignore[no-any-return]

    return client


def _registration(sign: Signer, as_: str = UNIVERSITY, **options: object) -> bytes:
    envelope = wrap(
        example("destination-registration"),
        sender=UNIVERSITY,
        recipient=EDUCATION_DEPARTMENT,
        service="DestinationRegistration",
    )
    return sign(envelope, as_=as_, **options)


def _status(client: FlaskClient, body: bytes) -> int:
    return client.post("/soap", data=body, content_type="text/xml; charset=utf-8").status_code


@pytest.mark.parametrize("mode", ["xsd", "xsd+sig", "xsd+dsig"])
def test_every_baseline_accepts_a_signed_envelope(
    baseline: Callable[[str], FlaskClient], sign: Signer, mode: str
) -> None:
    assert _status(baseline(mode), _registration(sign)) == 200


@pytest.mark.parametrize("mode", ["xsd+sig", "xsd+dsig"])
def test_the_signature_baselines_refuse_a_tampered_body(
    baseline: Callable[[str], FlaskClient], sign: Signer, mode: str
) -> None:
    tampered = _registration(sign).replace(b"REG-2025-000123", b"REG-2025-000124")
    assert _status(baseline("xsd"), tampered) == 200  # still valid against the schema
    assert _status(baseline(mode), tampered) == 400


@pytest.mark.parametrize("mode", ["xsd+sig", "xsd+dsig"])
def test_the_signature_baselines_refuse_another_participants_key(
    baseline: Callable[[str], FlaskClient], sign: Signer, mode: str
) -> None:
    # a valid signature by a trusted certificate, but not the one of the sender the routing header names
    assert _status(baseline(mode), _registration(sign, as_=EDUCATION_DEPARTMENT)) == 400


def test_only_the_gateways_own_check_refuses_a_stale_timestamp(
    baseline: Callable[[str], FlaskClient], sign: Signer
) -> None:
    stale = _registration(sign, now=datetime.now(UTC) - timedelta(hours=1), ttl=timedelta(hours=2))
    assert _status(baseline("xsd+sig"), stale) == 200  # signxml checks no freshness
    assert _status(baseline("xsd+dsig"), stale) == 400  # VerifySignature: older than GATEWAY_TIMESTAMP_MAX_AGE


def test_the_gateways_own_check_refuses_to_start_without_revocation(
    baseline: Callable[[str], FlaskClient], settings: Settings
) -> None:
    settings.crls[0].unlink()
    with pytest.raises(ConfigurationError, match="revocation cannot be checked"):
        baseline("xsd+dsig")
