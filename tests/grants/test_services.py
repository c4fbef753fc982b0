"""Creating, listing, pausing, resuming and revoking grants; only one's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.access.models import AccessOverride
from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.errors import GrantInvalid, GrantRefused
from gateway.graduates.models import GraduateAccount
from gateway.grants import services
from gateway.grants.models import Grant
from gateway.grants.scope import GrantState
from gateway.store.db import transaction
from tests.conftest import AGENCY_CHAOYANG, EDUCATION_DEPARTMENT, HUKOU_OFFICE, PRIVATE_EMPLOYER, UNIVERSITY, Signer
from tests.graduates.helpers import LI_MING, WANG_HONG, activated, context

NOW = datetime.now(UTC).replace(microsecond=0)


def create(app: Flask, account: GraduateAccount, now: datetime = NOW, **changes: Any) -> services.IssuedGrant:
    values: dict[str, Any] = {
        "verifier_id": HUKOU_OFFICE,
        "facts": ["identity_match", "education"],
        "purpose": "settlement",
        "purpose_text": None,
        **changes,
    }
    gateway = context(app)
    with transaction(gateway.sessions) as session:
        return services.create_grant(session, gateway.grant_tokens, account, now=now, **values)


def test_a_new_grant_has_the_defaults_a_token_and_a_short_code(app: Flask, client: FlaskClient, sign: Signer) -> None:
    account = activated(app, client, sign)
    issued = create(app, account, facts=["education", "identity_match"])
    grant = issued.grant
    assert (grant.facts, grant.purpose, grant.max_uses, grant.uses, grant.status) == (
        "identity_match,education",
        "settlement",
        1,
        0,
        "active",
    )
    assert grant.expires_at == NOW + timedelta(days=7)
    assert issued.short_code == f"{grant.short_code[:4]}-{grant.short_code[4:]}"
    claims = context(app).grant_tokens.read(issued.token)
    assert (claims.grant_id, claims.audience, claims.expires_at) == (grant.id, HUKOU_OFFICE, grant.expires_at)
    assert context(app).grant_tokens.read(services.token_for(context(app).grant_tokens, grant)).grant_id == grant.id
    with transaction(context(app).sessions) as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.kind == "grant.created"))
        facts = decode(entry.entry)
        assert (facts["grant"], facts["verifier"], facts["max_uses"]) == (grant.id, HUKOU_OFFICE, 1)
        assert LI_MING.identity_number.encode() not in entry.entry


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"verifier_id": "91110000MA00000000"}, "verifier"),
        ({"verifier_id": UNIVERSITY}, "verifier"),  # universities do not verify graduates
        ({"verifier_id": EDUCATION_DEPARTMENT}, "verifier"),
        ({"facts": []}, "facts"),
        ({"facts": ["education", "salary"]}, "facts"),
        ({"purpose": "curiosity"}, "purpose"),
        ({"purpose": "other"}, "purpose_text"),
        ({"purpose": "other", "purpose_text": "   "}, "purpose_text"),
        ({"purpose_text": "x" * 501}, "purpose_text"),
        ({"valid_days": 0}, "valid_days"),
        ({"valid_days": 91}, "valid_days"),
        ({"max_uses": 0}, "max_uses"),
        ({"max_uses": 101}, "max_uses"),
    ],
)
def test_invalid_grants_name_the_field(
    app: Flask, client: FlaskClient, sign: Signer, changes: dict[str, Any], field: str
) -> None:
    account = activated(app, client, sign)
    with pytest.raises(GrantInvalid) as caught:
        create(app, account, **changes)
    assert caught.value.field == field


def test_the_limits_and_the_other_purpose_are_accepted(app: Flask, client: FlaskClient, sign: Signer) -> None:
    account = activated(app, client, sign)
    grant = create(app, account, valid_days=90, max_uses=100, purpose="other", purpose_text="公积金提取").grant
    assert (grant.max_uses, grant.expires_at, grant.purpose_text) == (100, NOW + timedelta(days=90), "公积金提取")
    for verifier in (AGENCY_CHAOYANG, PRIVATE_EMPLOYER):
        assert create(app, account, verifier_id=verifier).grant.verifier_id == verifier


def test_access_overrides_decide_who_may_be_granted(app: Flask, client: FlaskClient, sign: Signer) -> None:
    account = activated(app, client, sign)
    with transaction(context(app).sessions) as session:
        for participant, effect in ((HUKOU_OFFICE, "deny"), (UNIVERSITY, "grant")):
            session.add(
                AccessOverride(
                    participant_id=participant,
                    service="GraduateVerificationRequest",
                    counterpart_id=None,
                    effect=effect,
                    reason="test",
                    created_at=NOW,
                )
            )
    with pytest.raises(GrantInvalid):
        create(app, account)
    assert create(app, account, verifier_id=UNIVERSITY).grant.verifier_id == UNIVERSITY
    with transaction(context(app).sessions) as session:
        eligible = {p.id for p in services.eligible_verifiers(session)}
    assert UNIVERSITY in eligible and HUKOU_OFFICE not in eligible and AGENCY_CHAOYANG in eligible


def test_pause_resume_revoke_and_the_listed_states(app: Flask, client: FlaskClient, sign: Signer) -> None:
    account = activated(app, client, sign)
    first = create(app, account).grant
    second = create(app, account, now=NOW + timedelta(seconds=1)).grant
    sessions = context(app).sessions
    with transaction(sessions) as session:
        services.pause(session, account, first.id, NOW)
        with pytest.raises(GrantRefused) as caught:
            services.pause(session, account, first.id, NOW)
        assert caught.value.code == "not_active"
        with pytest.raises(GrantRefused) as caught:
            services.resume(session, account, second.id, NOW)
        assert caught.value.code == "not_paused"
    with transaction(sessions) as session:
        listed = services.grants_of(session, account, NOW)
        assert [(s.grant.id, s.state) for s in listed] == [
            (second.id, GrantState.ACTIVE),
            (first.id, GrantState.PAUSED),
        ]
        assert listed[0].verifier_name == "北京市公安局海淀分局" and listed[0].uses_left == 1
        assert [s.state for s in services.grants_of(session, account, NOW + timedelta(days=8))] == [
            GrantState.EXPIRED
        ] * 2
    with transaction(sessions) as session:
        services.resume(session, account, first.id, NOW)
        services.revoke(session, account, first.id, NOW)
        with pytest.raises(GrantRefused) as caught:
            services.revoke(session, account, first.id, NOW)
        assert caught.value.code == "already_revoked"
        with pytest.raises(GrantRefused):
            services.resume(session, account, first.id, NOW)
        assert services.grant_of(session, account, first.id, NOW).state is GrantState.REVOKED
    with transaction(sessions) as session:
        kinds = [e.kind for e in session.scalars(select(AuditEntry).order_by(AuditEntry.leaf_index))]
        assert [k for k in kinds if k.startswith("grant.")] == [
            "grant.created",
            "grant.created",
            "grant.paused",
            "grant.resumed",
            "grant.revoked",
        ]


def test_a_graduate_cannot_touch_another_graduates_grant(app: Flask, client: FlaskClient, sign: Signer) -> None:
    li = activated(app, client, sign, LI_MING)
    wang = activated(app, client, sign, WANG_HONG)
    grant = create(app, li).grant
    sessions = context(app).sessions
    for action in (services.revoke, services.pause, services.grant_of):
        with transaction(sessions) as session, pytest.raises(GrantRefused) as caught:
            action(session, wang, grant.id, NOW)  # type: ignore[operator]
        assert caught.value.code == "not_found"
    with transaction(sessions) as session:
        assert services.grants_of(session, wang, NOW) == []
        assert session.get(Grant, grant.id).status == "active"  # type: ignore[union-attr]
