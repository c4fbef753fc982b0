"""Keeping personal identity numbers out of logs, audit entries and fault texts."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from stdnum.cn import ric
from stdnum.exceptions import InvalidComponent, ValidationError

_CANDIDATE = re.compile(r"(?<![0-9A-Z])[0-9]{17}[0-9X](?![0-9A-Z])")
MASK = "[identity number]"


def redact(text: str) -> str:
    """``text`` with every valid resident identity number (GB 11643) replaced by a mask.

    Only numbers with a valid check character and birth date are masked, so that credit codes and
    other ids that merely look alike stay readable.
    """
    return _CANDIDATE.sub(lambda m: MASK if _masked(m.group(0)) else m.group(0), text)


def _masked(candidate: str) -> bool:
    try:
        return ric.is_valid(candidate)
    except KeyError:  # python-stdnum's bug (validate_identity_number): mask what the date and check allow
        try:
            ric.get_birth_date(candidate)
        except ValidationError:
            return False
        return ric.calc_check_digit(candidate) == candidate[-1]  # it reads the first 17 characters


def validate_identity_number(number: str) -> str:
    """``stdnum.cn.ric.validate``, less one of its bugs: the compact number, or a stdnum ValidationError.

    python-stdnum 2.2 raises KeyError, not a validation error, for a number whose first six digits
    its region data knows only as a province or a city, not as a county (``110019...``): it looks
    up the county's history. Such a number names no county of birth and is refused as an invalid
    component, which is what python-stdnum means to say. (In the audit log's facts a digest that
    happened to hold such a run of digits made the intake fail: about once in 75,000 messages.)
    """
    try:
        return str(ric.validate(number))
    except KeyError:
        raise InvalidComponent("the birth place is not a county") from None


def is_identity_number(number: str) -> bool:
    """:func:`validate_identity_number` as a yes or no."""
    try:
        validate_identity_number(number)
    except ValidationError:
        return False
    return True


class IdentityHasher:
    """The keyed hash (HMAC-SHA256) that stands in for a resident identity number wherever one is stored.

    The key is ``keys/secrets/identity-hash.key`` (made by ``gateway init``): without it nobody can
    test a guessed number against the stored hashes, which a plain hash of an 18-character number
    with a checksum would allow.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the identity hash key is too short")
        self._key = key

    @classmethod
    def from_file(cls, path: Path) -> IdentityHasher:
        return cls(bytes.fromhex(path.read_text(encoding="ascii").strip()))

    def __call__(self, identity_number: str) -> str:
        normalised = identity_number.strip().upper()
        return hmac.new(self._key, normalised.encode("ascii"), hashlib.sha256).hexdigest()


def mask_identity(identity_number: str) -> str:
    """An identity number as a page may show it: the first four and last four characters, ``1101**********002X``.

    For echoing back what a person typed; anything shorter than nine characters is masked whole.
    """
    number = identity_number.strip().upper()
    if len(number) < 9:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]
