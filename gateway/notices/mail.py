"""E-mail for graduates: made and sent by the workers' periodic sweep, never in a request or the intake.

:meth:`Mailer.run_once` (one of ``Gateway.periodic_tasks``) does two things each time:

1. every new notice of a kind that is e-mailed becomes an :class:`OutgoingMail` to the graduate's
   confirmed address, written in the language they chose (``mailed``), or is marked
   ``no_address`` (no account, no confirmed address, or e-mail is off on this gateway). A
   conditional update makes exactly one of several sweeping workers write it.
2. every e-mail due is claimed (a lease, so that two workers never send the same one), sent through
   SMTP (``GATEWAY_SMTP_*``, ``docs/operations.md``) outside any transaction, and its outcome
   recorded: sent, or the error with the next attempt (doubling from ``GATEWAY_MAIL_RETRY_SECONDS``,
   at most an hour), until ``GATEWAY_MAIL_MAX_ATTEMPTS`` makes it ``failed``. Nothing is lost: the
   notice stays in the portal whatever happens to its e-mail, and the portal shows the e-mail's state.

Python's ``smtplib`` and ``email`` do the protocol and the message (no library does more of what
is needed here); the message is plain UTF-8 text with ``Auto-Submitted: auto-generated``.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.clock import Clock
from gateway.graduates.models import GraduateAccount
from gateway.notices.models import MailAddress, MailState, MailStatus, Notice, OutgoingMail
from gateway.notices.texts import words
from gateway.registry.models import Participant
from gateway.settings import MailSettings, Settings
from gateway.store.db import transaction
from gateway.web.i18n import in_language

log = logging.getLogger(__name__)
BATCH = 100
LEASE = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True)
class Outgoing:
    """What the transport sends (plain values: no database object crosses into the SMTP conversation)."""

    mail_id: int
    to_address: str
    subject: str
    body: str


Transport = Callable[[Sequence[Outgoing]], dict[int, str | None]]  # mail id -> error, or None when sent


def smtp_transport(mail: MailSettings) -> Transport:
    """Send through the configured SMTP server, one connection per batch; per message, an error or None."""

    def send(batch: Sequence[Outgoing]) -> dict[int, str | None]:
        outcome: dict[int, str | None] = {}
        try:
            server = _connect(mail)
        except (OSError, smtplib.SMTPException) as exc:
            error = _describe(exc)
            return {m.mail_id: error for m in batch}
        try:
            for item in batch:
                try:
                    server.send_message(_message(mail, item))
                    outcome[item.mail_id] = None
                except (OSError, smtplib.SMTPException) as exc:
                    outcome[item.mail_id] = _describe(exc)
                    if isinstance(exc, smtplib.SMTPServerDisconnected | OSError):
                        break  # the connection is gone: the rest wait for the next sweep
        finally:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                server.quit()
        for item in batch:
            outcome.setdefault(item.mail_id, "not sent: the connection to the mail server was lost")
        return outcome

    return send


def _connect(mail: MailSettings) -> smtplib.SMTP:
    timeout = mail.smtp_timeout_seconds
    server: smtplib.SMTP
    if mail.smtp_security == "tls":
        server = smtplib.SMTP_SSL(mail.smtp_host, mail.smtp_port, timeout=timeout, context=ssl.create_default_context())
    else:
        server = smtplib.SMTP(mail.smtp_host, mail.smtp_port, timeout=timeout)
        if mail.smtp_security == "starttls":
            server.starttls(context=ssl.create_default_context())
    if mail.smtp_username:
        server.login(mail.smtp_username, mail.smtp_password)
    return server


def _message(mail: MailSettings, item: Outgoing) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = item.to_address
    message["Subject"] = item.subject
    message["Date"] = format_datetime(datetime.now().astimezone())
    message["Message-ID"] = make_msgid(domain=mail.sender.rpartition("@")[2] or "localhost")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(item.body, charset="utf-8")
    return message


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


class Mailer:
    """The e-mail part of the periodic sweep (see the module's docstring)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        clock: Clock,
        transport: Transport | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._mail = settings.mail
        self._clock = clock
        self._transport = transport or smtp_transport(settings.mail)

    def run_once(self) -> int:
        """Address the new notices and send what is due; returns how many e-mails were sent."""
        self.address_new_notices()
        if not self._mail.enabled:
            return 0
        return self.send_due()

    # --- 1. notices become e-mails ------------------------------------------------------------------

    def address_new_notices(self) -> int:
        """Make the e-mails of new notices (or mark them ``no_address``); returns how many were made."""
        made = 0
        with transaction(self._sessions) as session:
            notices = session.scalars(
                select(Notice).where(Notice.mail_state == MailState.NEW).order_by(Notice.id).limit(BATCH)
            ).all()
            names: dict[str, str] | None = None
            for notice in notices:
                address = self._address_of(session, notice) if self._mail.enabled else None
                state = MailState.MAILED if address is not None else MailState.NO_ADDRESS
                claimed = session.execute(
                    update(Notice)
                    .where(Notice.id == notice.id, Notice.mail_state == MailState.NEW)
                    .values(mail_state=state)
                    .execution_options(synchronize_session=False)
                )
                if claimed.rowcount != 1 or address is None:  # type: ignore[attr-defined]
                    continue
                if names is None:
                    names = {pid: name for pid, name in session.execute(select(Participant.id, Participant.name))}
                said = words(notice.kind, notice.facts, address.language, names)
                session.add(
                    self._outgoing(
                        address,
                        purpose="notice",
                        subject=said.title,
                        body=self._body(address.language, said.text),
                        notice_id=notice.id,
                    )
                )
                made += 1
        return made

    @staticmethod
    def _address_of(session: Session, notice: Notice) -> MailAddress | None:
        account_id = notice.account_id
        if account_id is None:
            account_id = session.scalar(
                select(GraduateAccount.id).where(GraduateAccount.identity_hash == notice.identity_hash)
            )
        if account_id is None:
            return None
        address = session.get(MailAddress, account_id)
        return address if address is not None and address.confirmed_at is not None else None

    def _body(self, language: str, text: str) -> str:
        base = self._settings.published_url
        return in_language(
            language, "mail.body", text=text, notices=f"{base}/graduate/notices", account=f"{base}/graduate/account"
        )

    def confirmation(self, address: MailAddress, link: str) -> OutgoingMail:
        """The e-mail with the link that confirms ``address`` (added to the caller's transaction)."""
        return self._outgoing(
            address,
            purpose="confirm",
            subject=in_language(address.language, "mail.confirm.subject"),
            body=in_language(address.language, "mail.confirm.body", link=link),
            notice_id=None,
            to_address=address.address,
        )

    def _outgoing(
        self,
        address: MailAddress,
        purpose: str,
        subject: str,
        body: str,
        notice_id: int | None,
        to_address: str | None = None,
    ) -> OutgoingMail:
        now = self._clock.now()
        site = in_language(address.language, "site.name")
        return OutgoingMail(
            account_id=address.account_id,
            notice_id=notice_id,
            purpose=purpose,
            to_address=to_address or address.address,
            subject=f"【{site}】{subject}"[:200] if address.language == "zh" else f"[{site}] {subject}"[:200],
            body=body,
            status=MailStatus.PENDING,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )

    # --- 2. sending ---------------------------------------------------------------------------------

    def send_due(self) -> int:
        """Claim the e-mails due, send them, record each outcome; returns how many were sent."""
        batch = self._claim()
        if not batch:
            return 0
        outcome = self._transport(batch)
        now = self._clock.now()
        sent = 0
        with transaction(self._sessions) as session:
            for item in batch:
                mail = session.get(OutgoingMail, item.mail_id)
                if mail is None:
                    continue
                error = outcome.get(item.mail_id, "not attempted")
                mail.attempts += 1
                mail.lease_until = None
                if error is None:
                    mail.status, mail.sent_at, mail.last_error = MailStatus.SENT, now, None
                    sent += 1
                    continue
                mail.last_error = error
                if mail.attempts >= self._mail.max_attempts:
                    mail.status = MailStatus.FAILED
                    log.warning("e-mail %s failed for good after %s attempts: %s", mail.id, mail.attempts, error)
                else:
                    mail.next_attempt_at = now + self.backoff(mail.attempts)
                    log.info("e-mail %s not sent (attempt %s), retrying: %s", mail.id, mail.attempts, error)
        return sent

    def backoff(self, attempts: int) -> timedelta:
        """The wait after ``attempts`` failed attempts: the base, doubling, at most an hour."""
        wait = timedelta(seconds=self._mail.retry_base_seconds * 2 ** min(attempts - 1, 20))
        return min(wait, MAX_BACKOFF)

    def _claim(self) -> list[Outgoing]:
        now = self._clock.now()
        with transaction(self._sessions) as session:
            due = session.scalars(
                select(OutgoingMail)
                .where(
                    OutgoingMail.status == MailStatus.PENDING,
                    OutgoingMail.next_attempt_at <= now,
                    or_(OutgoingMail.lease_until.is_(None), OutgoingMail.lease_until < now),
                )
                .order_by(OutgoingMail.next_attempt_at, OutgoingMail.id)
                .limit(BATCH)
            ).all()
            claimed: list[Outgoing] = []
            for mail in due:
                taken = session.execute(
                    update(OutgoingMail)
                    .where(
                        OutgoingMail.id == mail.id,
                        OutgoingMail.status == MailStatus.PENDING,
                        or_(OutgoingMail.lease_until.is_(None), OutgoingMail.lease_until < now),
                    )
                    .values(lease_until=now + LEASE)
                    .execution_options(synchronize_session=False)
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(Outgoing(mail.id, mail.to_address, mail.subject, mail.body))
        return claimed
