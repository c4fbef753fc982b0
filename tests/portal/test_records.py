"""我的就业去向登记, 我的档案 and the notices: a graduate's paperwork moving through the season, from the
gateway's own records, seen by that graduate only (issue 17, items 2 and 3)."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from tests.archives.test_transfers import accepted, sender, text
from tests.conftest import AGENCY_CHAOYANG, EDUCATION_DEPARTMENT, UNIVERSITY, Signer
from tests.domain.helpers import replace_text
from tests.graduates.helpers import LI_MING, WANG_HONG, file_registration, registration_document
from tests.portal.conftest import activate
from tests.portal.conftest import text as page_text


def _registration_rejected_then_filed(client: FlaskClient, sign: Signer) -> None:
    send = sender(client, sign)
    first = replace_text(registration_document(LI_MING), "reg:RegistrationId", "REG-2025-000120")
    accepted(send(first, "DestinationRegistration", UNIVERSITY, EDUCATION_DEPARTMENT))
    accepted(send(text("registration-rejected"), "RegistrationRejected", EDUCATION_DEPARTMENT, UNIVERSITY))
    file_registration(client, sign, LI_MING)


def _main(html: str) -> str:
    return html[html.index("<main") : html.index("</main>")]


def test_the_registration_page_shows_the_rejection_its_reasons_and_the_filing(
    app: Flask, client: FlaskClient, sign: Signer
) -> None:
    _registration_rejected_then_filed(client, sign)
    assert activate(client).status_code == 302  # type: ignore[attr-defined]
    page = _main(page_text(client.get("/graduate/registration")))
    filed, rejected = page.index("REG-2025-000123"), page.index("REG-2025-000120")
    assert filed < rejected  # the latest first
    assert "已备案" in page and LI_MING.transfer_number in page and LI_MING.verification_number in page
    assert "已退回" in page and "未填写就业协议编号" in page and "档案接收单位未填写" in page
    assert "北京示范大学报送了登记" in page and "北京市教育委员会予以备案" in page
    assert LI_MING.identity_number not in page
    english = _main(page_text(client.get("/graduate/registration?lang=en")))
    assert "Filed" in english and "Sent back" in english and "Employed under" in english


def test_the_archive_page_follows_the_transfer(app: Flask, client: FlaskClient, sign: Signer) -> None:
    file_registration(client, sign, LI_MING)
    assert activate(client).status_code == 302  # type: ignore[attr-defined]
    send = sender(client, sign)
    page = _main(page_text(client.get("/graduate/archive")))
    assert "由北京示范大学保管" in page and "还没有转递记录" in page

    accepted(send(text("archive-transfer-request"), "ArchiveTransferRequest", AGENCY_CHAOYANG, UNIVERSITY))
    page = _main(page_text(client.get("/graduate/archive")))
    assert "北京市朝阳区人才服务中心申请转递档案" in page and "尚未寄出" in page and "应在" in page
    assert "010-65090000" in page  # the receiving agency's public contact, from the directory

    accepted(send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG))
    page = _main(page_text(client.get("/graduate/archive")))
    assert "转递途中" in page and "机要通信" in page and "JY-1101-2025-0007788" in page
    assert "尚未签收" in page and "应在" in page and 'data-status="dispatched"' in page

    accepted(send(text("archive-receipt"), "ArchiveReceipt", AGENCY_CHAOYANG, UNIVERSITY))
    page = _main(page_text(client.get("/graduate/archive")))
    assert "由北京市朝阳区人才服务中心保管" in page and "已签收" in page and "损坏 1 份" in page
    english = _main(page_text(client.get("/graduate/archive?lang=en")))
    assert "Held by" in english and "Confidential communication" in english


def test_the_notices_tell_the_story_in_order_and_are_marked_read(app: Flask, client: FlaskClient, sign: Signer) -> None:
    _registration_rejected_then_filed(client, sign)
    assert activate(client).status_code == 302  # type: ignore[attr-defined]
    send = sender(client, sign)
    for name, service, source, target in (
        ("archive-transfer-request", "ArchiveTransferRequest", AGENCY_CHAOYANG, UNIVERSITY),
        ("archive-transfer-manifest", "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG),
        ("archive-receipt", "ArchiveReceipt", AGENCY_CHAOYANG, UNIVERSITY),
    ):
        accepted(send(text(name), service, source, target))
    home = page_text(client.get("/graduate/"))
    assert re.search(r'<span class="count"[^>]*>7</span>', home)  # seven unread, in the navigation
    page = _main(page_text(client.get("/graduate/notices")))
    kinds = re.findall(r'data-kind="([a-z_]+)"', page)
    assert kinds == [
        "archive_received",
        "archive_dispatched",
        "archive_requested",
        "registration_filed",
        "registration_submitted",
        "registration_rejected",
        "registration_submitted",
    ]
    assert "北京市朝阳区人才服务中心已签收您的人事档案" in page
    assert "未发送（没有已确认的邮箱）" in page or "待处理" in page or "此类通知不发送邮件" in page
    assert LI_MING.transfer_number not in page and LI_MING.identity_number not in page
    again = page_text(client.get("/graduate/notices"))
    assert 'class="count"' not in again and "unread" not in _main(again)  # read now


def test_another_graduate_sees_none_of_it(app: Flask, client: FlaskClient, sign: Signer) -> None:
    _registration_rejected_then_filed(client, sign)
    send = sender(client, sign)
    accepted(send(text("archive-transfer-request"), "ArchiveTransferRequest", AGENCY_CHAOYANG, UNIVERSITY))
    accepted(send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG))
    file_registration(client, sign, WANG_HONG)
    assert activate(client, WANG_HONG).status_code == 302  # type: ignore[attr-defined]
    pages = {path: _main(page_text(client.get(path))) for path in ("/graduate/registration", "/graduate/archive")}
    pages["/graduate/notices"] = _main(page_text(client.get("/graduate/notices")))
    for path, page in pages.items():
        for theirs in ("REG-2025-000123", "REG-2025-000120", LI_MING.transfer_number, "JY-1101-2025-0007788"):
            assert theirs not in page, (path, theirs)
    assert WANG_HONG.registration_id in pages["/graduate/registration"]
    assert "还没有转递记录" in pages["/graduate/archive"]
    # The pages take no id to ask for another's: extra arguments change nothing.
    for path in ("/graduate/registration?account=1", "/graduate/archive?identity_hash=x", "/graduate/notices?a=1"):
        assert "REG-2025-000123" not in page_text(client.get(path))


def test_the_pages_need_a_signed_in_graduate(client: FlaskClient) -> None:
    for path in ("/graduate/registration", "/graduate/archive", "/graduate/notices", "/graduate/account"):
        response = client.get(path)
        assert response.status_code == 302 and "/graduate/sign-in" in response.headers["Location"], path
