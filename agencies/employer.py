"""An employer's HR system: offers employment agreements and follows them to signing or cancellation.

It offers an agreement to a graduate through the graduate's university (``AgreementOffer``) and
records the graduate's answer (``AgreementResponse``), the university's review
(``AgreementReview``), and the review of a cancellation it asked for
(``AgreementCancellationReview``). An employer that keeps archives (a state organ, a public
institution, a state-owned enterprise) also asks for and receipts graduates' archives. Taking a
graduate on, HR verifies their education with the authorisation the graduate gave it
(:class:`~agencies.verification.Verifying`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from agencies.base import Received
from agencies.documents import CHINA, china_time, render, text
from agencies.receiving import ArchiveReceivingUnit
from agencies.records import Graduate, Offer, Organisation
from agencies.verification import Verifying
from gateway.sdk.client import GatewayRefusal
from gateway.sdk.verification import VerifiedVerification

OFFER_DAYS = 30

# An agreement's state, from the answers received so far. Push deliveries may arrive in any order
# (the gateway delivers with several threads), so the state is read off the set of answers rather
# than moved along by each one as it arrives.
_STATES = (
    ("cancellation-review:approve", "cancelled"),
    ("cancellation-requested", "cancellation_requested"),
    ("review:approve", "signed"),
    ("review:reject", "review_rejected"),
    ("response:refuse", "refused"),
    ("response:accept", "accepted"),
    ("offered", "offered"),
)


class Employer(ArchiveReceivingUnit, Verifying):
    def __init__(
        self, profile: Organisation, delivery: str, contact_name: str, contact_phone: str, workers: int = 1
    ) -> None:
        super().__init__(profile, delivery, workers)
        self.contact_name = contact_name
        self.contact_phone = contact_phone
        self.answers: dict[str, set[str]] = {}  # agreement id -> what happened to it
        self.handlers.update(
            {
                "AgreementResponse": self._on_response,
                "AgreementReview": self._on_review,
                "AgreementCancellationReview": self._on_cancellation_review,
            }
        )

    def offer(self, graduate: Graduate, offer: Offer) -> None:
        """Offer ``offer`` to ``graduate``, valid from yesterday for a month (China time).

        An offer drafted from last year's template (``expired_first``) carries dates already past; the
        gateway refuses it (AGREEMENT_OFFER_EXPIRED) and HR sends it again with this year's dates.
        """
        today = datetime.now(UTC).astimezone(CHINA).date()
        if offer.expired_first:
            try:
                self._send_offer(graduate, offer, today - timedelta(days=40), today - timedelta(days=10))
            except GatewayRefusal as refusal:
                if refusal.code != "AGREEMENT_OFFER_EXPIRED":
                    raise
            else:
                raise RuntimeError(f"the gateway accepted offer {offer.agreement_id}, whose validity has ended")
        self._send_offer(graduate, offer, today - timedelta(days=1), today + timedelta(days=OFFER_DAYS))

    def _send_offer(self, graduate: Graduate, offer: Offer, valid_from: date, valid_until: date) -> None:
        document = render(
            "agreement-offer",
            offer=offer,
            g=graduate,
            valid_from=valid_from,
            valid_until=valid_until,
            contact_name=self.contact_name,
            contact_phone=self.contact_phone,
            at=china_time(),
        )
        self.send(document, graduate.school.credit_code, "AgreementOffer", offer.agreement_id)
        self._note(offer.agreement_id, "offered")

    def request_cancellation(self, graduate: Graduate, agreement_id: str, reason: str) -> None:
        """Ask the graduate's university to cancel a signed agreement (both sides agreed)."""
        document = render(
            "agreement-cancellation",
            agreement_id=agreement_id,
            requested_by="employer",
            reason=reason,
            at=china_time(),
        )
        self.send(document, graduate.school.credit_code, "AgreementCancellation", agreement_id)
        self._note(agreement_id, "cancellation-requested")

    def decide(self, answer: VerifiedVerification) -> str:
        if answer.identity_match and answer.education is not None:
            return "taken on"
        return "not taken on: the verified facts do not support it"

    def state(self, agreement_id: str) -> str | None:
        """offered, accepted, refused, signed, review_rejected, cancellation_requested or cancelled."""
        with self._lock:
            answers = self.answers.get(agreement_id, set())
        return next((state for answer, state in _STATES if answer in answers), None)

    def _on_response(self, received: Received) -> None:
        self._record(received, "response")

    def _on_review(self, received: Received) -> None:
        self._record(received, "review")

    def _on_cancellation_review(self, received: Received) -> None:
        self._record(received, "cancellation-review")

    def _record(self, received: Received, step: str) -> None:
        self._note(text(received.document, "agr:AgreementId"), f"{step}:{text(received.document, 'agr:Decision')}")

    def _note(self, agreement_id: str, answer: str) -> None:
        with self._lock:
            self.answers.setdefault(agreement_id, set()).add(answer)
