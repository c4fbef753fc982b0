"""A household registration (hukou) office: settles graduates, on facts it verifies.

A graduate who comes to settle where they work (or back where they come from) brings their
diploma and the authorisation they gave the office in the graduate portal: the grant token (on
the phone, as a QR code) or its short code, read out at the counter. The office verifies them
through the gateway's verification service (:class:`~agencies.verification.Verifying`) and
settles the graduate when the signed answer says that the person at the counter is the graduate,
with the education and the destination stated; when the graduate granted the employment evidence,
it settles on that instead: the employer and the agreement's or labour contract's reference (the
policy's diploma plus a labour contract or employment agreement).
"""

from __future__ import annotations

from agencies.verification import Verifying
from gateway.sdk.verification import VerifiedVerification

SETTLED = "settled"
NOT_SETTLED = "not settled: the verified facts do not support it"


class HouseholdRegistrationOffice(Verifying):
    """Polls its mailbox (nothing is addressed to it yet) and verifies the graduates who come to settle."""

    def decide(self, answer: VerifiedVerification) -> str:
        evidence = answer.employment_evidence
        if evidence is not None:
            employed = evidence.employer is not None and evidence.contract_reference is not None
        else:
            employed = answer.destination is not None and answer.destination.employer is not None
        if answer.identity_match and answer.education is not None and employed:
            return SETTLED
        return NOT_SETTLED
