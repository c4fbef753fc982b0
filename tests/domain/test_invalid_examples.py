"""Each invalid example of ``examples/invalid`` is refused with the fault its README names.

Cases whose rule depends on a filed registration first send the ``given-*`` registration (or the
story's own) and its filing, so that only the one rule under test can refuse the document.
"""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from tests.conftest import (
    AGENCY_CHAOYANG,
    EDUCATION_DEPARTMENT,
    EXAMPLES,
    PRIVATE_EMPLOYER,
    SOE_EMPLOYER,
    UNIVERSITY,
    Signer,
    example,
)
from tests.domain.helpers import send

INVALID = EXAMPLES / "invalid"
AGENCY_BEIJING_CITY = "12110000400000003A"

# file -> (given registration or None for none at all, sender, recipient, expected fault)
CASES: dict[str, tuple[str | None, str, str, str]] = {
    "identity-number-check-character.xml": (None, UNIVERSITY, EDUCATION_DEPARTMENT, "CODE_INVALID"),
    "credit-code-check-character.xml": (None, UNIVERSITY, EDUCATION_DEPARTMENT, "CODE_INVALID"),
    "region-withdrawn.xml": (None, UNIVERSITY, EDUCATION_DEPARTMENT, "CODE_INVALID"),
    "destination-code-unknown.xml": (None, UNIVERSITY, EDUCATION_DEPARTMENT, "CODE_INVALID"),
    "registration-filed-unknown.xml": ("story", EDUCATION_DEPARTMENT, UNIVERSITY, "REGISTRATION_UNKNOWN"),
    "manifest-unregistered-graduate.xml": ("story", UNIVERSITY, AGENCY_CHAOYANG, "REGISTRATION_NOT_FILED"),
    "manifest-confidential-by-post.xml": ("story", UNIVERSITY, AGENCY_CHAOYANG, "ARCHIVE_RULE_VIOLATION"),
    "manifest-private-employer-to-employer.xml": ("story", UNIVERSITY, PRIVATE_EMPLOYER, "ARCHIVE_RULE_VIOLATION"),
    "manifest-state-owned-employer-to-agency.xml": (
        "given-registration-state-owned-employer.xml",
        UNIVERSITY,
        AGENCY_CHAOYANG,
        "ARCHIVE_RULE_VIOLATION",
    ),
    "manifest-awaiting-employment-wrong-agency.xml": (
        "given-registration-awaiting-employment.xml",
        UNIVERSITY,
        AGENCY_BEIJING_CITY,
        "ARCHIVE_RULE_VIOLATION",
    ),
    "manifest-further-study-to-agency.xml": (
        "given-registration-further-study.xml",
        UNIVERSITY,
        AGENCY_CHAOYANG,
        "ARCHIVE_RULE_VIOLATION",
    ),
    "manifest-carried-by-graduate.xml": ("story", UNIVERSITY, AGENCY_CHAOYANG, "ARCHIVE_RULE_VIOLATION"),
    "registration-employer-unit-nature-mismatch.xml": (
        None,
        UNIVERSITY,
        EDUCATION_DEPARTMENT,
        "EMPLOYER_UNIT_NATURE_MISMATCH",
    ),
    "registration-targeted-not-released.xml": (
        None,
        UNIVERSITY,
        EDUCATION_DEPARTMENT,
        "TARGETED_TRAINING_NOT_RELEASED",
    ),
    "manifest-without-transcript.xml": ("story", UNIVERSITY, AGENCY_CHAOYANG, "ARCHIVE_INCOMPLETE"),
    "receipt-unknown-manifest.xml": ("story", AGENCY_CHAOYANG, UNIVERSITY, "ARCHIVE_TRANSFER_UNKNOWN"),
    "manifest-declared-twice.xml": ("story", UNIVERSITY, AGENCY_CHAOYANG, "ARCHIVE_TRANSFER_DUPLICATE"),
}
# Examples that need an accepted document of the story first (after the given registration).
BEFORE: dict[str, tuple[str, str, str]] = {
    "manifest-declared-twice.xml": ("archive-transfer-manifest", UNIVERSITY, AGENCY_CHAOYANG),
}


def test_every_invalid_example_has_a_case_and_is_in_the_readme() -> None:
    readme = (INVALID / "README.md").read_text(encoding="utf-8")
    files = {p.name for p in INVALID.glob("*.xml") if not p.name.startswith("given-")}
    assert files == set(CASES)
    for name, (_, _, _, code) in CASES.items():
        assert re.search(rf"`{re.escape(name)}`.*`{code}`", readme), name


@pytest.mark.parametrize("name", sorted(CASES))
def test_invalid_example_is_refused_with_its_fault(name: str, client: FlaskClient, sign: Signer) -> None:
    given, sender, recipient, code = CASES[name]
    if given is not None:
        registration = example("destination-registration") if given == "story" else (INVALID / given).read_bytes()
        assert send(client, sign, registration, UNIVERSITY, EDUCATION_DEPARTMENT)[0] is None
        assert send(client, sign, "registration-filed", EDUCATION_DEPARTMENT, UNIVERSITY)[0] is None
    if name in BEFORE:
        document, first_sender, first_recipient = BEFORE[name]
        assert send(client, sign, document, first_sender, first_recipient)[0] is None
    refused, message = send(client, sign, (INVALID / name).read_bytes(), sender, recipient)
    assert refused == code, message


@pytest.mark.parametrize(
    ("given", "recipient"),
    [
        ("given-registration-state-owned-employer.xml", SOE_EMPLOYER),
        ("given-registration-awaiting-employment.xml", AGENCY_CHAOYANG),
    ],
)
def test_the_same_manifest_to_the_right_unit_is_accepted(
    given: str, recipient: str, client: FlaskClient, sign: Signer
) -> None:
    assert send(client, sign, (INVALID / given).read_bytes(), UNIVERSITY, EDUCATION_DEPARTMENT)[0] is None
    assert send(client, sign, "registration-filed", EDUCATION_DEPARTMENT, UNIVERSITY)[0] is None
    manifest = (INVALID / "manifest-state-owned-employer-to-agency.xml").read_bytes()
    names = {SOE_EMPLOYER: "中国示范能源集团有限公司", AGENCY_CHAOYANG: "北京市朝阳区人才服务中心"}
    manifest = re.sub(
        rb"<c:CreditCode>[^<]*</c:CreditCode>", f"<c:CreditCode>{recipient}</c:CreditCode>".encode(), manifest
    )
    manifest = re.sub(rb"<c:Name>[^<]*</c:Name>", f"<c:Name>{names[recipient]}</c:Name>".encode(), manifest)
    code, message = send(client, sign, manifest, UNIVERSITY, recipient)
    assert code is None, message
