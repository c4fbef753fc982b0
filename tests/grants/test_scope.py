"""The pure rules of a grant: vocabularies, derived state, and the order of the checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from gateway.errors import (
    AuthorisationExhausted,
    AuthorisationExpired,
    AuthorisationInsufficientScope,
    AuthorisationRevoked,
    AuthorisationSubjectMismatch,
    AuthorisationWrongVerifier,
)
from gateway.grants import scope
from gateway.grants.scope import GrantState, GrantView, Request, Subject, refusal, state_of
from gateway.intake.catalog import ServiceCatalog
from gateway.settings import SCHEMAS_DIR
from tests.conftest import example

NOW = datetime(2026, 7, 1, 12, tzinfo=UTC)
LATER = NOW + timedelta(days=7)
FILED = Subject("李明", "ZD11000020250001234", "HY2025BJ7Q4K9M3T")
GRANT = GrantView(
    id="g-1",
    verifier_id="111101080000000075",
    facts=frozenset({"identity_match", "education"}),
    purpose="settlement",
    status="active",
    expires_at=LATER,
    uses=0,
    max_uses=1,
    subject=FILED,
)
REQUEST = Request(
    sender_id="111101080000000075",
    subject=Subject("李明", verification_number="HY2025BJ7Q4K9M3T"),
    facts=frozenset({"education"}),
    purpose="settlement",
)


def enumeration(type_name: str) -> tuple[str, ...]:
    tree = etree.parse(str(SCHEMAS_DIR / "verification-1.xsd"))
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    return tuple(tree.xpath(f"//xs:simpleType[@name='{type_name}']//xs:enumeration/@value", namespaces=ns))


def test_the_vocabularies_are_the_schemas() -> None:
    assert enumeration("Fact") == scope.FACTS
    assert enumeration("Purpose") == scope.PURPOSES


@pytest.mark.parametrize(
    ("status", "expires_at", "uses", "expected"),
    [
        ("active", LATER, 0, GrantState.ACTIVE),
        ("paused", LATER, 0, GrantState.PAUSED),
        ("revoked", NOW - timedelta(days=1), 1, GrantState.REVOKED),
        ("paused", NOW, 0, GrantState.EXPIRED),  # expiry is exclusive: at expires_at it has ended
        ("active", LATER, 1, GrantState.EXHAUSTED),
        ("paused", NOW - timedelta(seconds=1), 1, GrantState.EXPIRED),
    ],
)
def test_the_derived_state(status: str, expires_at: datetime, uses: int, expected: GrantState) -> None:
    assert state_of(status, expires_at, uses, 1, NOW) is expected


def test_facts_are_stored_in_one_order_and_unknown_ones_refused() -> None:
    assert scope.encode_facts(["archive", "identity_match", "archive"]) == "identity_match,archive"
    assert scope.decode_facts("identity_match,archive") == ("identity_match", "archive")
    with pytest.raises(ValueError, match="salary"):
        scope.encode_facts(["salary"])


def test_a_request_within_the_grant_passes() -> None:
    assert refusal(GRANT, REQUEST, NOW) is None
    by_transfer = replace(REQUEST, subject=Subject("李明", transfer_number="ZD11000020250001234"))
    assert refusal(GRANT, by_transfer, NOW) is None


@pytest.mark.parametrize(
    ("grant_changes", "request_changes", "fault"),
    [
        ({}, {"sender_id": "12110105400000002L"}, AuthorisationWrongVerifier),
        ({}, {"subject": Subject("李敏", verification_number="HY2025BJ7Q4K9M3T")}, AuthorisationSubjectMismatch),
        ({}, {"subject": Subject("李明", transfer_number="HY2025BJ7Q4K9M3T")}, AuthorisationSubjectMismatch),
        ({"subject": None}, {}, AuthorisationSubjectMismatch),
        ({"status": "revoked"}, {}, AuthorisationRevoked),
        ({"status": "paused"}, {}, AuthorisationRevoked),
        ({"expires_at": NOW}, {}, AuthorisationExpired),
        ({"uses": 1}, {}, AuthorisationExhausted),
        ({}, {"facts": frozenset({"education", "archive"})}, AuthorisationInsufficientScope),
        ({}, {"purpose": "employment_onboarding"}, AuthorisationInsufficientScope),
    ],
)
def test_each_rule_refuses_with_its_fault(
    grant_changes: dict[str, object], request_changes: dict[str, object], fault: type[Exception]
) -> None:
    found = refusal(replace(GRANT, **grant_changes), replace(REQUEST, **request_changes), NOW)  # type: ignore[arg-type]
    assert isinstance(found, fault)


def test_the_order_of_the_checks() -> None:
    """Another verifier learns nothing about the grant's state; the state comes before the scope."""
    everything_wrong = replace(GRANT, status="revoked", uses=1, expires_at=NOW)
    outsider = replace(REQUEST, sender_id="12110105400000002L", facts=frozenset({"archive"}))
    assert isinstance(refusal(everything_wrong, outsider, NOW), AuthorisationWrongVerifier)
    wrong_person = replace(REQUEST, subject=Subject("李敏", verification_number="X"), facts=frozenset({"archive"}))
    assert isinstance(refusal(everything_wrong, wrong_person, NOW), AuthorisationSubjectMismatch)
    assert isinstance(
        refusal(everything_wrong, replace(REQUEST, facts=frozenset({"archive"})), NOW), AuthorisationRevoked
    )
    expired_and_used = replace(GRANT, uses=1, expires_at=NOW)
    assert isinstance(refusal(expired_and_used, REQUEST, NOW), AuthorisationExpired)
    paused_and_used = replace(GRANT, status="paused", uses=1)
    assert isinstance(refusal(paused_and_used, REQUEST, NOW), AuthorisationExhausted)
    paused_beyond_scope = replace(GRANT, status="paused")
    assert isinstance(refusal(paused_beyond_scope, replace(REQUEST, purpose="other"), NOW), AuthorisationRevoked)
    paused_message = refusal(paused_beyond_scope, REQUEST, NOW)
    assert paused_message is not None and "paused" in str(paused_message)


def test_the_example_response_is_valid() -> None:
    document = etree.ElementTree(etree.fromstring(example("graduate-verification-response")))
    schema = ServiceCatalog(SCHEMAS_DIR).schema
    assert schema.validate(document), schema.error_log
