"""Verifying a graduate through the gateway with the authorisation the graduate gave, and acting on it.

A household registration office, a talent service agency or an employer asks the platform's
verification service (an education department) with a ``GraduateVerificationRequest``: the
graduate's name and transfer or verification number, the facts wanted and why, and the
authorisation the graduate handed over (the grant token, or the short code read out at the
counter), passed on unchanged. The gateway answers at once: the SDK verifies the gateway's
signature on the answer and on the receipt and gives the facts (``SentMessage.verification``);
a refusal is a :class:`~gateway.sdk.client.GatewayRefusal` with an ``AUTHORISATION_*`` code,
which the clerk acts on (ask the graduate for a new authorisation, ask only for what was granted).

Each agency decides on the facts in its own way (:meth:`Verifying.decide`); every request and
its outcome is kept in ``verifications``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agencies.base import Agency
from agencies.documents import render
from agencies.records import Organisation
from gateway.sdk.client import GatewayRefusal
from gateway.sdk.verification import VerifiedVerification

log = logging.getLogger(__name__)
ANSWERED = "answered"


@dataclass(frozen=True)
class Presented:
    """What the graduate presents at the counter: who they are and the authorisation they give."""

    name: str
    authorisation: str  # the grant token, or the short code
    verification_number: str | None = None
    transfer_number: str | None = None
    identity_number: str | None = None  # read off the identity card, for identity_match


@dataclass(frozen=True)
class Verification:
    """One request as the verifier's records keep it: ``outcome`` is ``answered`` or the fault code."""

    request_id: str
    facts: tuple[str, ...]
    purpose: str
    outcome: str
    decision: str | None = None  # what the agency decided on the answer
    answer: VerifiedVerification | None = None


class Verifying(Agency):
    """An agency that verifies graduates (the access matrix lets hukou offices, agencies and employers).

    A mixin in the cooperative sense: ``class Employer(ArchiveReceivingUnit, Verifying)`` runs this
    ``__init__`` between the receiving unit's and the agency's.
    """

    def __init__(self, profile: Organisation, delivery: str, workers: int = 1) -> None:
        super().__init__(profile, delivery, workers)
        self._verifications: list[Verification] = []
        self._requests_sent = 0

    def verify(
        self,
        service_provider: str,
        graduate: Presented,
        facts: tuple[str, ...],
        purpose: str,
        purpose_text: str,
    ) -> Verification:
        """Ask ``service_provider`` (an education department) for ``facts``; the answer acted on, or
        the refusal's code recorded and :class:`GatewayRefusal` raised for the caller to act on."""
        with self._lock:
            self._requests_sent += 1
            request_id = f"VER-{self.id[-6:]}-{self._requests_sent:06d}"
        document = render(
            "graduate-verification-request",
            request_id=request_id,
            name=graduate.name,
            transfer_number=graduate.transfer_number,
            verification_number=graduate.verification_number,
            identity_number=graduate.identity_number,
            facts=facts,
            purpose=purpose,
            purpose_text=purpose_text,
            token=graduate.authorisation,
        )
        try:
            sent = self.send(document, service_provider, "GraduateVerificationRequest", correlation_id=request_id)
        except GatewayRefusal as refusal:
            self._keep(Verification(request_id, facts, purpose, refusal.code))
            raise
        if sent.verification is None:
            raise RuntimeError(f"the gateway accepted verification request {request_id} without answering it")
        answer = sent.verification
        verification = Verification(request_id, facts, purpose, ANSWERED, self.decide(answer), answer)
        self._keep(verification)
        log.info("%s: verification %s answered (%s): %s", self.id, request_id, ", ".join(facts), verification.decision)
        return verification

    def decide(self, answer: VerifiedVerification) -> str:
        """What this agency does with the facts; by default it only notes that they were verified."""
        return "verified" if answer.identity_match is not False else "identity does not match"

    @property
    def verifications(self) -> list[Verification]:
        with self._lock:
            return list(self._verifications)

    def _keep(self, verification: Verification) -> None:
        with self._lock:
            self._verifications.append(verification)
