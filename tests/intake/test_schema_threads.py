"""Schema errors stay with their own message when many threads validate at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from gateway.errors import SchemaViolation
from gateway.intake.catalog import ServiceCatalog
from gateway.intake.pipeline import Inbound, Parse, ValidateSchema, split
from gateway.sdk.envelope import wrap
from gateway.settings import SCHEMAS_DIR
from gateway.xmlparse import XmlLimits
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, example


def test_each_thread_reports_its_own_schema_errors() -> None:
    catalog = ServiceCatalog(SCHEMAS_DIR)
    stages = [Parse(XmlLimits()), split, ValidateSchema(catalog)]
    good = example("destination-registration")

    def message(index: int) -> bytes:
        bad = good.replace(b"<reg:DestinationCode>10<", f"<reg:DestinationCode>x{index}<".encode())
        return wrap(bad, sender=UNIVERSITY, recipient=EDUCATION_DEPARTMENT, service="DestinationRegistration")

    def validate(index: int) -> tuple[int, str]:
        inbound = Inbound(raw=message(index), received_at=None)  # type: ignore[arg-type]
        try:
            for stage in stages:
                stage(inbound, None)  # type: ignore[arg-type]
        except SchemaViolation as fault:
            return index, fault.message
        return index, ""

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(validate, range(400)))
    wrong = [(i, text) for i, text in results if f"'x{i}'" not in text]
    assert wrong == []
