"""Reading values out of business documents by namespace and path (the one place that knows the prefixes).

A path is split once into its elements' names (``{namespace}local``), then walked child by child
with ``iterchildren(tag)``, which matches in C and keeps the interpreter lock. Not a compiled XPath:
an XPath lets go of the lock while it evaluates, so the thread has to win it back after every value
it reads. The domain rules read some thirty values of a registration in the group commit's writer,
inside the batch's transaction: with the request threads busy, each read took about 60 µs of
waiting for 1.5 µs of work while the database (on SQLite, the file the worker processes share)
stayed held (bench/intake/README.md, fifth pass). Not ``findtext`` either: ElementPath forgets
every parsed path once it holds a hundred, fewer than the gateway uses.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache

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
def _steps(path: str) -> tuple[str, ...]:
    """``reg:Graduate/c:Name`` as the names of its elements in Clark notation, ``{namespace}local``."""
    steps = []
    for step in path.split("/"):
        prefix, _, local = step.partition(":")
        if not local or prefix not in NS:
            raise ValueError(f"{path!r}: each step is prefix:name with a prefix of documents.NS")
        steps.append(f"{{{NS[prefix]}}}{local}")
    return tuple(steps)


def first(element: etree._Element, path: str) -> etree._Element | None:
    """The first element at ``path`` (child steps with prefixes of :data:`NS`), or None."""
    for tag in _steps(path):
        child = next(element.iterchildren(tag), None)
        if child is None:
            return None
        element = child
    return element


def text(element: etree._Element, path: str) -> str | None:
    """The stripped text of the first element at ``path`` (child steps with prefixes of :data:`NS`),
    or None when there is none or its text is empty."""
    found = first(element, path)
    value = found.text if found is not None else None
    return value.strip() or None if value else None


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
