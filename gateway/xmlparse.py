"""The one XML parser factory of the project.

Every document the gateway reads from outside (messages, WSDLs, schemas, responses) goes through
:func:`parse_untrusted` or a parser from :func:`hardened_parser`:

- no DTD loading, no entity substitution, no network access, no huge-tree mode;
- a document that *declares* a DTD is refused outright (``XML_DTD_FORBIDDEN``), and one that
  declares or references entities is refused as ``XML_ENTITY_FORBIDDEN``, so neither billion-laughs
  nor external entities reach later stages even in unexpanded form;
- nesting deeper than the configured limit is refused (``XML_TOO_DEEP``);
- comments are dropped while parsing (they are outside every signature; see ``hardened_parser``).

The size limit is enforced before parsing, by the caller that reads the bytes (``intake``).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from lxml import etree

from gateway.errors import DtdForbidden, EntityForbidden, MalformedXml, XmlTooDeep

_local = threading.local()

# libxml2's own hard nesting limit without XML_PARSE_HUGE; our configurable limit sits below it.
_LIBXML_DEPTH_MESSAGE = re.compile(r"[Ee]xcessive depth")
# A DOCTYPE may only stand in the prolog: after an optional BOM, XML declaration, PIs, comments.
_DOCTYPE_IN_PROLOG = re.compile(rb"\A(?:\xef\xbb\xbf)?(?:\s+|<\?.*?\?>|<!--.*?-->)*<!DOCTYPE", re.S)
_PROLOG_SCAN_BYTES = 64 * 1024


def hardened_parser() -> etree.XMLParser:
    """A fresh lxml parser with every dangerous feature switched off."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        # Exclusive C14N (the only one allowed) leaves comments out of every digest, so a comment
        # could split a signed text node without breaking the signature: lxml's ``.text`` would then
        # stop at the comment and later stages would read a value that was never signed. Comments
        # are dropped at parse time, so that what is read is exactly what was signed.
        remove_comments=True,
        collect_ids=False,
    )


def _thread_parser() -> etree.XMLParser:
    # lxml parsers are not thread-safe; one per thread avoids building one per message.
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = hardened_parser()
        _local.parser = parser
    return parser


def parse_untrusted(data: bytes, max_depth: int = 100) -> etree._ElementTree:
    """Parse ``data`` as an untrusted XML document.

    Raises :class:`MalformedXml`, :class:`DtdForbidden`, :class:`EntityForbidden` or
    :class:`XmlTooDeep`; never returns a document with a DTD or an entity in it.
    """
    _refuse_doctype(data)
    try:
        tree = etree.ElementTree(etree.fromstring(data, parser=_thread_parser()))
    except etree.XMLSyntaxError as exc:
        raise _classify_syntax_error(exc) from None
    docinfo = tree.docinfo
    # Belt and braces: _refuse_doctype already turned away every prolog with a DOCTYPE.
    if docinfo.internalDTD is not None or docinfo.doctype or docinfo.system_url:
        raise DtdForbidden("the document has a document type declaration; DTDs are not allowed")
    root = tree.getroot()
    if _has_entity_reference(root):
        raise EntityForbidden("the document contains an entity reference; entities are not allowed")
    if _too_deep(root, max_depth):
        raise XmlTooDeep(f"elements nest more than {max_depth} levels deep")
    return tree


def _refuse_doctype(data: bytes) -> None:
    """Refuse a DOCTYPE before libxml2 sees it, so that no DTD is ever fetched or even opened."""
    head = data[:_PROLOG_SCAN_BYTES]
    if b"<!DOCTYPE" not in head and b"\x00" not in head[:4]:
        return  # the common case, found at C speed: no DOCTYPE in an 8-bit encoding
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        head = head.decode("utf-16", errors="ignore").encode("utf-8")
    elif head[:2] in (b"<\x00", b"\x00<"):
        head = head.decode("utf-16-le" if head[0] == 0x3C else "utf-16-be", errors="ignore").encode()
    match = _DOCTYPE_IN_PROLOG.match(head)
    if match is None:
        return
    if b"<!ENTITY" in head[match.end() :]:
        raise EntityForbidden("the document declares entities in a DTD; DTDs and entities are not allowed")
    raise DtdForbidden("the document has a document type declaration; DTDs are not allowed")


def _classify_syntax_error(exc: etree.XMLSyntaxError) -> Exception:
    text = str(exc)
    if _LIBXML_DEPTH_MESSAGE.search(text):
        return XmlTooDeep("elements nest deeper than the parser allows")
    if "Entity" in text and ("not defined" in text or "undeclared" in text):
        return EntityForbidden(f"entity references are not allowed ({_line(exc)})")
    return MalformedXml(f"the message is not well-formed XML: {exc.msg} ({_line(exc)})")


def _line(exc: etree.XMLSyntaxError) -> str:
    return f"line {exc.lineno}, column {exc.offset}" if exc.lineno else "at the start"


def _has_entity_reference(root: etree._Element) -> bool:
    # With resolve_entities=False an entity reference stays in the tree as an _Entity node.
    return any(True for _ in root.iter(etree.Entity))


@lru_cache(maxsize=8)
def _deeper_than(limit: int) -> etree.XPath:
    # "/*/*/.../*" with limit + 1 steps selects any element nested deeper than the limit; libxml2
    # evaluates it in C, which is far cheaper than walking the tree in Python for every message.
    return etree.XPath("boolean(/" + "/".join(["*"] * (limit + 1)) + ")")


def _too_deep(root: etree._Element, limit: int) -> bool:
    return bool(_deeper_than(limit)(root))
