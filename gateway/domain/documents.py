"""Reading values out of business documents by namespace and path (the one place that knows the prefixes).

Each path is compiled once, as an XPath: ``findtext`` parses its path again on every call, and a
registration's rules read some thirty values (issue 13). lxml locks an XPath while it evaluates,
so the compiled paths are shared by every thread.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from typing import cast

from lxml import etree

from gateway.clock import utc

NS = {
    "c": "urn:gradex:common:1",
    "reg": "urn:gradex:registration:1",
    "agr": "urn:gradex:agreement:1",
    "arc": "urn:gradex:archive:1",
    "ver": "urn:gradex:verification:1",
}


@cache
def _compiled(path: str) -> etree.XPath:
    return etree.XPath(path, namespaces=NS)


def text(element: etree._Element, path: str) -> str | None:
    """The stripped text of the first element at ``path`` (child steps with prefixes of :data:`NS`),
    or None when there is none or its text is empty."""
    found = cast(list[etree._Element], _compiled(path)(element))
    value = found[0].text if found else None
    return value.strip() if value and value.strip() else None


def required(element: etree._Element, path: str) -> str:
    value = text(element, path)
    if value is None:  # the XSD has already required it; a missing value here is a programming error
        raise KeyError(path)
    return value


def instant(element: etree._Element, path: str) -> datetime:
    return utc(datetime.fromisoformat(required(element, path).replace("Z", "+00:00")))


def day(element: etree._Element, path: str) -> date:
    return date.fromisoformat(required(element, path)[:10])


def flag(element: etree._Element, path: str) -> bool:
    return (text(element, path) or "false") in ("true", "1")
