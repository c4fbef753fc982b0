from __future__ import annotations

import pytest

from gateway.codes.credit_code import is_credit_code, validate_credit_code
from gateway.errors import ValidationError


@pytest.mark.parametrize(
    "code",
    ["91110000600037341L", "12110108400000008J", "111101080000000075", " 91110000600037341l "],
)
def test_valid_codes(code: str) -> None:
    assert validate_credit_code(code) == code.strip().upper()


def test_letters_allowed_where_gb32100_allows_them() -> None:
    # Position 1 (registering authority) may be a letter, e.g. N for agriculture: stdnum's
    # validate() refuses this, which is why the format check is ours.
    from stdnum.cn.uscc import calc_check_digit

    base = "N2110108MA0000001"
    assert is_credit_code(base + calc_check_digit(base))


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("91110000600037341X", "check character is 'X' but GB 32100 gives 'L'"),
        ("9111000060003734", "18 characters, not 16"),
        ("91110000600037341O", "uses 0-9 and A-Y"),
        ("911A0000600037341L", "region code (digits) in positions 3-8"),
    ],
)
def test_invalid_codes_name_the_rule(code: str, rule: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_credit_code(code, "id")
    assert raised.value.field == "id"
    assert rule in raised.value.rule
