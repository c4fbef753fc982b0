"""Unified social credit codes (统一社会信用代码, GB 32100-2015), the id of every organisation.

The check character comes from python-stdnum (``stdnum.cn.uscc.calc_check_digit``). Its
``validate`` also demands digits in positions 1-8, but GB 32100 allows letters from the code
alphabet in position 1 (the registering authority, e.g. ``N`` for agriculture, ``Y`` for others)
and position 2 (the organisation type), so the format check here is our own.
"""

from __future__ import annotations

import re

from stdnum.cn import uscc

from gateway.errors import ValidationError

_FORMAT = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")


def validate_credit_code(value: str, field: str = "credit code") -> str:
    """Return ``value`` (upper-cased, trimmed) if it is a well-formed credit code.

    Raises :class:`ValidationError` naming ``field`` and the broken rule.
    """
    code = value.strip().upper()
    if len(code) != 18:
        raise ValidationError(field, f"a unified social credit code has 18 characters, not {len(code)}")
    if not _FORMAT.fullmatch(code):
        raise ValidationError(
            field,
            "a unified social credit code uses 0-9 and A-Y without I, O, S, V, Z, "
            "with the region code (digits) in positions 3-8",
        )
    expected = uscc.calc_check_digit(code[:17])
    if code[17] != expected:
        raise ValidationError(field, f"check character is {code[17]!r} but GB 32100 gives {expected!r}")
    return code


def is_credit_code(value: str) -> bool:
    try:
        validate_credit_code(value)
    except ValidationError:
        return False
    return True
