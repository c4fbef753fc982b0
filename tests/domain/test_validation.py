"""``check_codes`` by element name: everywhere for the shared codes, in archive documents only for Type and Method."""

from __future__ import annotations

import pytest
from lxml import etree

from gateway.domain.validation import check_codes
from gateway.errors import CodeInvalid

ARC = "urn:gradex:archive:1"


def document(namespace: str, leaf: str) -> etree._Element:
    return etree.fromstring(f'<d:Doc xmlns:d="{namespace}"><d:Part>\n{leaf}</d:Part></d:Doc>')


@pytest.mark.parametrize(
    ("leaf", "named"),
    [
        ("<d:Type>love_letters</d:Type>", "Type"),
        ("<d:Method>pigeon</d:Method>", "Method"),
        ("<d:IdentityNumber>110105200303150410</d:IdentityNumber>", "IdentityNumber"),
    ],
)
def test_an_archive_documents_codes_are_checked(leaf: str, named: str) -> None:
    with pytest.raises(CodeInvalid) as raised:
        check_codes(document(ARC, leaf))
    assert str(raised.value).startswith(f"line 2: {named} ")
    assert "110105200303150410" not in str(raised.value)


def test_type_and_method_outside_archive_documents_are_not_code_list_values() -> None:
    check_codes(document("urn:gradex:registration:1", "<d:Type>anything</d:Type><d:Method>at all</d:Method>"))
    with pytest.raises(CodeInvalid, match="DestinationCode"):
        check_codes(document("urn:gradex:registration:1", "<d:DestinationCode>99</d:DestinationCode>"))


def test_valid_codes_pass() -> None:
    check_codes(document(ARC, "<d:Type>transcript</d:Type><d:Method>confidential_communication</d:Method>"))


def test_a_credit_code_is_refused_every_time_and_a_valid_one_passes_every_time() -> None:
    # Checked credit codes are remembered: only the valid ones, so a wrong one is refused again.
    for _ in range(2):
        with pytest.raises(CodeInvalid, match="CreditCode check character"):
            check_codes(document(ARC, "<d:CreditCode>91110108500000006X</d:CreditCode>"))
        check_codes(document(ARC, "<d:CreditCode>91110108500000006J</d:CreditCode>"))
