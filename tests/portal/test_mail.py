"""E-mail notices through a real SMTP server (aiosmtpd on a free loopback port), read as they arrived.

The graduate confirms an address by the link the gateway e-mails; the archive moves; the sweep
(``Mailer.run_once``, what every worker runs) sends the notices in the graduate's language, in
order, to that graduate only. A mail server that is down loses nothing: the e-mail waits, is
retried, and the portal says so; after the last attempt it is marked failed and the notice stays.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient

from gateway.clock import FixedClock
from gateway.notices.mail import Mailer
from gateway.settings import MailSettings, Settings
from gateway.web.app import create_app
from tests.archives.test_transfers import accepted, sender, text
from tests.conftest import AGENCY_CHAOYANG, UNIVERSITY, Signer, free_port
from tests.graduates.helpers import LI_MING, WANG_HONG, file_registration
from tests.portal.conftest import activate, sign_in
from tests.portal.conftest import text as page_text
from tests.web.helpers import csrf_token


@dataclass
class Inbox:
    """What the SMTP server received: each message parsed, with its envelope recipients."""

    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for recipients, message in self.received if address in recipients]


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def app(settings: Settings, clock: FixedClock, smtp: SmtpServer) -> Iterator[Flask]:
    mail = MailSettings(smtp_host="127.0.0.1", smtp_port=smtp.port, sender="gateway@example.cn", max_attempts=3)
    application = create_app(settings.with_overrides(mail=mail, public_url="https://gateway.example.cn"), clock=clock)
    application.config["TESTING"] = True
    yield application
    application.extensions["gateway"].engine.dispose()


def mailer(app: Flask) -> Mailer:
    found: Mailer = app.extensions["gateway"].mailer
    return found


def confirm_address(app: Flask, client: FlaskClient, smtp: SmtpServer, address: str, language: str) -> None:
    """Give ``address`` in the account page, let the sweep send the link, and follow it."""
    token = csrf_token(client, "/graduate/account")
    data = {"email": address, "language": language, "csrf_token": token}
    response = client.post("/graduate/account/email", data=data)
    assert response.status_code == 303
    assert mailer(app).run_once() == 1
    [message] = smtp.inbox.to(address)
    body = message.get_content()
    link = re.search(r"https?://\S+/graduate/account/confirm/\S+", body)
    assert link, body
    path = link.group(0).split("://", 1)[1].split("/", 1)[1]
    assert client.get("/" + path).status_code == 303
    assert "已确认" in page_text(client.get("/graduate/account")) or "confirmed" in page_text(
        client.get("/graduate/account")
    )


def test_notices_arrive_by_mail_in_the_graduates_language_in_order_and_to_them_only(
    app: Flask, client: FlaskClient, sign: Signer, smtp: SmtpServer
) -> None:
    file_registration(client, sign, WANG_HONG)
    assert activate(client, WANG_HONG).status_code == 302  # type: ignore[attr-defined]
    confirm_address(app, client, smtp, "wang@example.cn", "zh")
    client.post("/graduate/sign-out", data={"csrf_token": csrf_token(client, "/graduate/")})

    file_registration(client, sign, LI_MING)
    assert activate(client).status_code == 302  # type: ignore[attr-defined]
    confirm_address(app, client, smtp, "li.ming@example.cn", "en")
    confirmation = smtp.inbox.to("li.ming@example.cn")[0]
    assert confirmation["Subject"] == "[Graduate Exchange Gateway] Please confirm your e-mail address"

    send = sender(client, sign)
    accepted(send(text("archive-transfer-request"), "ArchiveTransferRequest", AGENCY_CHAOYANG, UNIVERSITY))
    accepted(send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG))
    assert mailer(app).run_once() == 1  # the request is shown in the portal only; the dispatch is e-mailed
    accepted(send(text("archive-receipt"), "ArchiveReceipt", AGENCY_CHAOYANG, UNIVERSITY))
    assert mailer(app).run_once() == 1

    notices = smtp.inbox.to("li.ming@example.cn")[1:]
    assert [m["Subject"] for m in notices] == [
        "[Graduate Exchange Gateway] Archive dispatched",
        "[Graduate Exchange Gateway] Archive received",
    ]
    dispatched = notices[0].get_content()
    assert "by Confidential communication" in dispatched and "JY-1101-2025-0007788" in dispatched
    assert "https://gateway.example.cn/graduate/notices" in dispatched
    for message in notices:
        assert message["From"] == "gateway@example.cn" and message["Auto-Submitted"] == "auto-generated"
        content = message.get_content()
        assert LI_MING.identity_number not in content and LI_MING.verification_number not in content
    assert len(smtp.inbox.to("wang@example.cn")) == 1  # Wang Hong's confirmation only: none of Li Ming's notices

    page = page_text(client.get("/graduate/notices?lang=en"))
    assert page.count("E-mail: sent") == 2


def test_a_failing_mail_server_loses_no_notice(
    app: Flask, client: FlaskClient, sign: Signer, smtp: SmtpServer, clock: FixedClock
) -> None:
    file_registration(client, sign, LI_MING)
    assert activate(client).status_code == 302  # type: ignore[attr-defined]
    confirm_address(app, client, smtp, "li.ming@example.cn", "zh")
    smtp.stop()  # the mail server goes down

    send = sender(client, sign)
    accepted(send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG))
    assert mailer(app).run_once() == 0
    page = page_text(client.get("/graduate/notices"))
    assert "档案已寄出" in page  # the notice is there whatever happens to its e-mail
    assert "等待发送" in page and "已尝试 1 次" in page

    assert mailer(app).run_once() == 0  # not due yet: the next attempt waits
    smtp.start()  # the server is back
    clock.set(clock.now() + timedelta(minutes=2))
    assert mailer(app).run_once() == 1
    [_, dispatched] = smtp.inbox.to("li.ming@example.cn")
    assert dispatched["Subject"] == "【高校毕业生就业信息交换平台】档案已寄出"
    assert "已发送" in page_text(client.get("/graduate/notices"))

    smtp.stop()  # down for good: after the last attempt the e-mail is failed, and the notice stays
    accepted(send(text("archive-receipt"), "ArchiveReceipt", AGENCY_CHAOYANG, UNIVERSITY))
    for _ in range(3):
        mailer(app).run_once()
        clock.set(clock.now() + timedelta(hours=1))
    sign_in(client, LI_MING.identity_number)  # hours later: the session had ended
    page = page_text(client.get("/graduate/notices"))
    assert "档案已签收" in page and "多次发送失败" in page


def test_without_a_mail_server_notices_stay_in_the_portal(settings: Settings, clock: FixedClock, sign: Signer) -> None:
    application = create_app(settings, clock=clock)  # no GATEWAY_SMTP_HOST
    application.config["TESTING"] = True
    try:
        client = application.test_client()
        file_registration(client, sign, LI_MING)
        assert activate(client).status_code == 302  # type: ignore[attr-defined]
        assert "未开通电子邮件通知" in page_text(client.get("/graduate/account"))
        token = csrf_token(client, "/graduate/account")
        refused = client.post("/graduate/account/email", data={"email": "a@example.cn", "csrf_token": token})
        assert refused.status_code == 409
        assert mailer(application).run_once() == 0
        assert "未发送（没有已确认的邮箱）" in page_text(client.get("/graduate/notices"))
    finally:
        application.extensions["gateway"].engine.dispose()


def test_a_confirmation_link_works_only_for_its_account_and_address(
    app: Flask, client: FlaskClient, sign: Signer, smtp: SmtpServer
) -> None:
    file_registration(client, sign, LI_MING)
    assert activate(client).status_code == 302  # type: ignore[attr-defined]
    token = csrf_token(client, "/graduate/account")
    client.post("/graduate/account/email", data={"email": "li@example.cn", "language": "zh", "csrf_token": token})
    mailer(app).run_once()
    link = re.search(r"/graduate/account/confirm/\S+", smtp.inbox.to("li@example.cn")[0].get_content())
    assert link
    bad = client.get("/graduate/account/confirm/not-a-token")
    assert bad.status_code == 400 and "确认链接无效" in page_text(bad)
    client.post("/graduate/sign-out", data={"csrf_token": csrf_token(client, "/graduate/")})
    file_registration(client, sign, WANG_HONG)
    assert activate(client, WANG_HONG).status_code == 302  # type: ignore[attr-defined]
    assert client.get(link.group(0)).status_code == 400  # Li Ming's link, followed by Wang Hong
    client.post("/graduate/sign-out", data={"csrf_token": csrf_token(client, "/graduate/")})
    assert sign_in(client, LI_MING.identity_number).status_code == 302  # type: ignore[attr-defined]
    assert client.get(link.group(0)).status_code == 303
    token = csrf_token(client, "/graduate/account")
    invalid = client.post("/graduate/account/email", data={"email": "not an address", "csrf_token": token})
    assert invalid.status_code == 400 and "请填写有效的电子邮箱地址" in page_text(invalid)
