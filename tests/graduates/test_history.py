"""The access history: every use and refused attempt of one's grants, every message about oneself, nobody else's."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskClient

from gateway.graduates import services
from gateway.graduates.models import GraduateAccount
from gateway.store.db import transaction
from tests.conftest import AGENCY_CHAOYANG, HUKOU_OFFICE, PRIVATE_EMPLOYER, UNIVERSITY, Signer, example
from tests.domain.helpers import send
from tests.domain.test_season import current_offer
from tests.graduates.helpers import LI_MING, WANG_HONG, activated, context
from tests.grants.helpers import ask, grant, verification_request


def history(app: Flask, account: GraduateAccount) -> list[services.HistoryItem]:
    with transaction(context(app).sessions) as session:
        return services.history(session, account)


def test_each_graduate_sees_their_own_history_and_nobody_elses(app: Flask, client: FlaskClient, sign: Signer) -> None:
    li = activated(app, client, sign, LI_MING)
    wang = activated(app, client, sign, WANG_HONG)
    for document, sender, recipient in (
        (current_offer(example("agreement-offer")), PRIVATE_EMPLOYER, UNIVERSITY),
        (example("archive-transfer-request"), AGENCY_CHAOYANG, UNIVERSITY),
    ):
        code, detail = send(client, sign, document, sender, recipient)
        assert code is None, detail
    li_grant = grant(app, li, facts=["education"], max_uses=3)
    used = ask(client, sign, verification_request(li_grant.token, facts=("education",)))
    refused = ask(client, sign, verification_request(li_grant.token, facts=("archive",)))
    unknown = ask(client, sign, verification_request("ZZZZ-ZZZZ"))  # names Li Ming as subject, no grant
    wang_grant = grant(app, wang)
    wang_used = ask(client, sign, verification_request(wang_grant.token, graduate=WANG_HONG))
    assert (used.fault, refused.fault, unknown.fault, wang_used.fault) == (
        None,
        "AUTHORISATION_INSUFFICIENT_SCOPE",
        "AUTHORISATION_INVALID",
        None,
    )
    with transaction(context(app).sessions) as session:
        [offer] = services.offers(session, li, datetime.now(UTC))
        services.respond_to_offer(session, context(app).originator, li, offer.agreement_pk, True, datetime.now(UTC))

    li_items = history(app, li)
    assert [i.at for i in li_items] == sorted((i.at for i in li_items), reverse=True)
    messages = [(i.event, i.organisation_id, i.recipient_id) for i in reversed(li_items) if i.kind == "message"]
    platform = context(app).settings.platform_id
    assert messages == [
        ("registration_submitted", UNIVERSITY, "11110000000000001R"),
        ("registration_filed", "11110000000000001R", UNIVERSITY),
        ("agreement_offered", PRIVATE_EMPLOYER, UNIVERSITY),
        ("archive_requested", AGENCY_CHAOYANG, UNIVERSITY),
        ("agreement_answered", platform, UNIVERSITY),
        ("agreement_answered", platform, PRIVATE_EMPLOYER),
    ]
    verifications = [
        (i.organisation_id, i.grant_id, i.facts, i.purpose, i.outcome, i.fault_code, i.message_id)
        for i in reversed(li_items)
        if i.kind == "verification"
    ]
    assert verifications == [
        (HUKOU_OFFICE, li_grant.grant.id, ("education",), "settlement", "used", None, used.message_id),
        (HUKOU_OFFICE, li_grant.grant.id, ("archive",), "settlement", "refused", refused.fault, refused.message_id),
        (
            HUKOU_OFFICE,
            None,
            ("identity_match", "education"),
            "settlement",
            "refused",
            unknown.fault,
            unknown.message_id,
        ),
    ]
    assert {i.organisation_name for i in li_items if i.kind == "verification"} == {"北京市公安局海淀分局"}

    wang_items = history(app, wang)
    assert [(i.kind, i.event or i.outcome) for i in reversed(wang_items)] == [
        ("message", "registration_submitted"),
        ("message", "registration_filed"),
        ("verification", "used"),
    ]
    assert {i.message_id for i in li_items}.isdisjoint({i.message_id for i in wang_items})
    assert wang_items[0].grant_id == wang_grant.grant.id
    assert services.EVENTS["ArchiveTransferManifest"] == "archive_dispatched"
    assert len(history(app, li)) == len(li_items)
    with transaction(context(app).sessions) as session:
        assert len(services.history(session, li, limit=2)) == 2
