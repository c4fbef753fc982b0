"""Administrative region codes (GB/T 2260): ``XX0000`` province, ``XXXX00`` city, ``XXXXXX`` county.

The list is python-stdnum's ``cn/loc`` data file; codes it marks as withdrawn (``[-2010]``) are
not valid for new records. The hierarchy walk county -> city -> province is pure arithmetic on
the code, which is how GB/T 2260 defines it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from gateway.errors import ValidationError

# loc.dat marks validity with years: "[2010-]" current since 2010, "[-2010]" or "[1983-2010]" withdrawn.
_VALIDITY = re.compile(r"^\[(\d{4})?-(\d{4})?\]")
_LINE = re.compile(r'^(?P<indent> *)(?P<digits>\d+) (?:province|county)="(?P<name>[^"]*)"')


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    withdrawn: bool

    @property
    def level(self) -> str:
        """``province``, ``city`` or ``county``."""
        return region_level(self.code)


@cache
def _regions() -> dict[str, Region]:
    text = (resources.files("stdnum.cn") / "loc.dat").read_text(encoding="utf-8")
    table: dict[str, Region] = {}
    province = ""
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        digits, name = match["digits"], match["name"]
        if not match["indent"]:
            province = digits
            table[province + "0000"] = Region(province + "0000", name, False)
            continue
        # One code may carry several names over time: "[-1991]东郊区,[1992-]东丽区". It is current
        # when any of its names is (no end year); its name is the newest current one.
        names = [part.strip() for part in name.split(",") if part.strip()]
        current = [part for part in names if not _ended(part)]
        withdrawn = not current
        code = province + digits
        shown = _VALIDITY.sub("", (current or names)[-1])
        region = Region(code, shown, withdrawn)
        # Several entries may share a code over time; a current one wins over a withdrawn one.
        if code not in table or table[code].withdrawn:
            table[code] = region
    return table


def _ended(name: str) -> bool:
    """True when ``name`` carries an end year: "[-2010]x" or "[1983-2010]x"."""
    validity = _VALIDITY.match(name)
    return bool(validity and validity.group(2))


def region_level(code: str) -> str:
    if code.endswith("0000"):
        return "province"
    if code.endswith("00"):
        return "city"
    return "county"


def lookup_region(code: str) -> Region | None:
    return _regions().get(code)


@cache
def current_counties(province: str) -> tuple[Region, ...]:
    """The current county-level regions of ``province`` (``XX0000``), in code order, without the
    "市辖区" placeholders that stand for a city's districts as a whole."""
    prefix = province[:2]
    return tuple(
        region
        for code, region in sorted(_regions().items())
        if code.startswith(prefix) and region.level == "county" and not region.withdrawn and region.name != "市辖区"
    )


def validate_region_code(value: str, field: str = "region code") -> str:
    """Return ``value`` if it is a current GB/T 2260 code; raise :class:`ValidationError` otherwise."""
    code = value.strip()
    if not re.fullmatch(r"[0-9]{6}", code):
        raise ValidationError(field, f"a GB/T 2260 region code is six digits, not {value!r}")
    region = lookup_region(code)
    if region is None:
        raise ValidationError(field, f"{code} is not in the GB/T 2260 region list")
    if region.withdrawn:
        raise ValidationError(field, f"{code} ({region.name}) has been withdrawn from GB/T 2260")
    return code


def ancestry(code: str) -> list[str]:
    """``code`` and the codes above it, nearest first: county -> city -> province."""
    chain = [code]
    city = code[:4] + "00"
    province = code[:2] + "0000"
    for parent in (city, province):
        if parent != chain[-1]:
            chain.append(parent)
    return chain
