"""Keeping personal identity numbers out of logs, audit entries and fault texts."""

from __future__ import annotations

import re

from stdnum.cn import ric

_CANDIDATE = re.compile(r"(?<![0-9A-Z])[0-9]{17}[0-9X](?![0-9A-Z])")
MASK = "[identity number]"


def redact(text: str) -> str:
    """``text`` with every valid resident identity number (GB 11643) replaced by a mask.

    Only numbers with a valid check character and birth date are masked, so that credit codes and
    other ids that merely look alike stay readable.
    """
    return _CANDIDATE.sub(lambda m: MASK if ric.is_valid(m.group(0)) else m.group(0), text)
