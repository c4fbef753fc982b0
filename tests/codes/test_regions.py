from __future__ import annotations

import pytest

from gateway.codes.regions import ancestry, lookup_region, region_level, validate_region_code
from gateway.errors import ValidationError


def test_current_codes_at_every_level() -> None:
    assert validate_region_code("110000") == "110000"
    assert validate_region_code("110105") == "110105"
    assert validate_region_code("310115") == "310115"
    region = lookup_region("110105")
    assert region is not None and region.name == "朝阳区"
    assert [region_level(c) for c in ("110000", "110100", "110105")] == ["province", "city", "county"]


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("110103", "withdrawn"),  # 崇文区, merged into 东城区 in 2010
        ("999999", "not in the GB/T 2260 region list"),
        ("11010", "six digits"),
        ("11010A", "six digits"),
    ],
)
def test_invalid_codes_name_the_rule(code: str, rule: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_region_code(code, "region")
    assert rule in raised.value.rule


def test_ancestry_walks_county_city_province() -> None:
    assert ancestry("110105") == ["110105", "110100", "110000"]
    assert ancestry("110100") == ["110100", "110000"]
    assert ancestry("110000") == ["110000"]


def test_a_code_renamed_over_time_is_current_under_its_newest_name() -> None:
    # loc.dat: 0305 county="[1983-1989]南头区办事处,[1990-]南山区" under 44 (广东省)
    region = lookup_region("440305")
    assert region is not None and not region.withdrawn and region.name == "南山区"
    assert validate_region_code("440305") == "440305"
