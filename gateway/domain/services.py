"""Which service has which rules (services not listed get the generic checks only)."""

from __future__ import annotations

from gateway.agreements.rules import (
    AgreementCancellationReviewRules,
    AgreementCancellationRules,
    AgreementOfferRules,
    AgreementResponseRules,
    AgreementReviewRules,
)
from gateway.archives.services import (
    ArchiveReceiptRules,
    ArchiveTransferManifestRules,
    ArchiveTransferRequestRules,
)
from gateway.domain.message import ServiceRules
from gateway.grants.enforce import GraduateVerificationRules
from gateway.grants.throttle import ShortCodeThrottle
from gateway.grants.tokens import GrantTokens
from gateway.registrations.rules import (
    DestinationRegistrationRules,
    RegistrationFiledRules,
    RegistrationRejectedRules,
)
from gateway.registry.self_service import DirectoryEntryUpdateRules
from gateway.registry.snapshot import RegistrySnapshot


def service_rules(
    grant_tokens: GrantTokens, short_codes: ShortCodeThrottle, registry: RegistrySnapshot
) -> dict[str, ServiceRules]:
    """The rules of each service; ``grant_tokens`` reads the graduates' authorisation tokens,
    ``short_codes`` counts wrong short codes, and ``registry`` is the process's registry snapshot."""
    return {
        "DestinationRegistration": DestinationRegistrationRules(registry),
        "RegistrationFiled": RegistrationFiledRules(),
        "RegistrationRejected": RegistrationRejectedRules(),
        "AgreementOffer": AgreementOfferRules(),
        "AgreementResponse": AgreementResponseRules(),
        "AgreementReview": AgreementReviewRules(),
        "AgreementCancellation": AgreementCancellationRules(),
        "AgreementCancellationReview": AgreementCancellationReviewRules(),
        "ArchiveTransferRequest": ArchiveTransferRequestRules(registry),
        "ArchiveTransferManifest": ArchiveTransferManifestRules(registry),
        "ArchiveReceipt": ArchiveReceiptRules(),
        "GraduateVerificationRequest": GraduateVerificationRules(grant_tokens, short_codes),
        "DirectoryEntryUpdate": DirectoryEntryUpdateRules(),
    }
