"""Checking the codes inside a business document against their check characters and code lists.

The XSDs check each code's shape; this checks its meaning, by element name, the same way in every
service: identity numbers (GB 11643, ISO 7064 MOD 11-2, with python-stdnum), credit codes
(GB 32100), region codes (GB/T 2260) and the code lists of ``schemas/codes``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from lxml import etree
from stdnum.exceptions import ValidationError as StdnumError

from gateway.codes.credit_code import validate_credit_code
from gateway.codes.lists import code_list
from gateway.codes.regions import validate_region_code
from gateway.errors import CodeInvalid, ValidationError
from gateway.privacy import validate_identity_number

ARCHIVE_NS = "urn:gradex:archive:1"
_ARCHIVE_PREFIX = "{" + ARCHIVE_NS  # of a tag in Clark notation, "{namespace}name"


def _identity(value: str) -> None:
    try:
        validate_identity_number(value)
    except StdnumError as exc:
        # The number itself is personal data: say what is wrong, never echo it.
        raise ValidationError("IdentityNumber", f"is not a valid resident identity number ({exc})") from None


# The same schools, employers and agencies come back in message after message: their checked
# credit codes are remembered (public organisation ids; identity numbers, personal data, never are).
@lru_cache(maxsize=4096)
def _credit(value: str) -> None:
    validate_credit_code(value, "credit code")


def _region(value: str) -> None:
    validate_region_code(value, "region code")


def _listed(name: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value not in code_list(name):
            raise ValidationError(name, f"{value!r} is not in the code list {name} (schemas/codes/{name}.csv)")

    return check


_BY_NAME: dict[str, Callable[[str], None]] = {
    "IdentityNumber": _identity,
    "CreditCode": _credit,
    "School": _credit,
    "ArchiveReceiver": _credit,
    "Region": _region,
    "HouseholdRegion": _region,
    "WorkRegion": _region,
    "DestinationCode": _listed("destination-codes"),
    "UnitNature": _listed("unit-nature-codes"),
}
_ARCHIVE_ONLY: dict[str, Callable[[str], None]] = {
    "Type": _listed("archive-document-types"),
    "Method": _listed("dispatch-methods"),
}


def check_codes(document: etree._Element) -> None:
    """Raise :class:`CodeInvalid` for the first code in ``document`` that breaks its rule."""
    for element in document.iter(etree.Element):
        if len(element):  # only leaf elements hold codes (School is also an Organisation elsewhere)
            continue
        # The tag split by hand: an etree.QName for every element was most of this walk's cost.
        namespace, _, name = element.tag.rpartition("}")
        check = _BY_NAME.get(name)
        if check is None and namespace == _ARCHIVE_PREFIX:
            check = _ARCHIVE_ONLY.get(name)
        if check is None:
            continue
        try:
            check((element.text or "").strip())
        except ValidationError as exc:
            raise CodeInvalid(f"line {element.sourceline}: {name} {exc.rule}") from None
