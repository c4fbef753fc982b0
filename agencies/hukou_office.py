"""A household registration (hukou) office: settles graduates, on facts it verifies.

It verifies a graduate through the gateway's verification service with a
``GraduateVerificationRequest`` that carries the graduate's authorisation token (the JWS or short
code the graduate shows at the counter). **Not built yet:** the tokens, their enforcement and the
gateway's answer arrive with issue 6 (graduate grants); until then this office runs its mailbox
and sends nothing, and the demo's verification steps are marked as not yet built rather than
sending requests the gateway cannot yet check.
"""

from __future__ import annotations

from agencies.base import Agency


class HouseholdRegistrationOffice(Agency):
    """Polls its mailbox; verification requests arrive with issue 6."""
