"""Code lists kept as data: ``schemas/codes/<name>.csv`` with a ``code`` column and others.

Lists: ``destination-codes``, ``unit-nature-codes``, ``archive-document-types``,
``dispatch-methods``. Loaded once per process.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

from gateway.errors import ConfigurationError
from gateway.settings import SCHEMAS_DIR

CODES_DIR: Path = SCHEMAS_DIR / "codes"


@cache
def code_list(name: str) -> dict[str, dict[str, str]]:
    """The rows of code list ``name``, keyed by code. Raises :class:`ConfigurationError` if absent."""
    path = CODES_DIR / f"{name}.csv"
    if not path.is_file():
        raise ConfigurationError(f"code list {name} is missing ({path})")
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["code"]: row for row in csv.DictReader(handle)}
