"""The one XML parser factory of the project.

Every document the gateway reads from outside (messages, responses, stored envelopes) goes through
:func:`parse_untrusted`; the gateway's own WSDL and XSD files through :func:`schema_parser`.

- No file and no URL is ever opened because of a document: every URL libxml2 asks for (an external
  DTD, an external parameter or general entity, in any encoding and at any offset) resolves to
  nothing, whatever the parser options say (``_NoExternalResources``).
- A document that *has* a DTD is refused (``XML_DTD_FORBIDDEN``), one whose DTD declares entities
  as ``XML_ENTITY_FORBIDDEN``: libxml2 parses the DTD (in linear time: it bounds entity
  amplification itself) and the refusal reads what it parsed, so no hand-written scan of the
  prolog is needed and none can miss an encoding or an offset.
- Processing instructions are refused (``XML_PI_FORBIDDEN``): SOAP 1.1 (section 3) forbids them, and
  exclusive C14N signs them, so a PI inside a signed value would make ``.text`` stop at it and the
  gateway read a value that is not what was signed.
- Comments are dropped while parsing (they are outside every signature; see ``_OPTIONS``).
- :class:`XmlLimits` bounds depth, elements, attributes per element, attribute and text lengths and
  namespaces in scope, each with its own fault, before any later stage (schema, C14N, signature)
  sees the tree. Every check is linear in the size of the message; the cheap ones come first.

The size limit is enforced before parsing, by the caller that reads the bytes (``intake``).
"""

from __future__ import annotations

import codecs
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from lxml import etree

from gateway.errors import (
    ConfigurationError,
    DtdForbidden,
    EntityForbidden,
    MalformedXml,
    ProcessingInstructionForbidden,
    XmlAttributeTooLong,
    XmlTextTooLong,
    XmlTooDeep,
    XmlTooManyAttributes,
    XmlTooManyElements,
    XmlTooManyNamespaces,
)

# libxml2 refuses deeper nesting by itself unless XML_PARSE_HUGE is set (it never is here).
LIBXML_MAX_DEPTH = 256
# No element takes fewer bytes than "<a/>", in any encoding: a document of at most 4 * N bytes
# cannot hold more than N elements, so only longer ones are counted while they are parsed.
_MIN_ELEMENT_BYTES = 4
_FEED_BYTES = 64 * 1024

_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "attribute_defaults": False,
    "huge_tree": False,
    "remove_blank_text": False,
    # Exclusive C14N (the only one allowed) leaves comments out of every digest, so a comment
    # could split a signed text node without breaking the signature: lxml's ``.text`` would then
    # stop at the comment and later stages would read a value that was never signed. Comments
    # are dropped at parse time, so that what is read is exactly what was signed.
    "remove_comments": True,
    "remove_pis": False,  # kept, to be refused: they are signed, and SOAP forbids them
    "collect_ids": False,
}


@dataclass(frozen=True)
class XmlLimits:
    """What :func:`parse_untrusted` accepts. The defaults are the intake's (docs/protocol.md).

    ``elements``, ``text_chars`` and ``depth`` are operator settings (``GATEWAY_MAX_XML_*``);
    the other bounds are far above what any signed SOAP message needs and protect the stages after
    the parser: C14N sorts attributes and renders namespaces per element, so an element with
    40,000 attributes, or thousands of namespaces in scope, would cost seconds there.
    """

    depth: int = 100
    elements: int = 10_000
    attributes: int = 64  # on one element (namespace declarations not counted)
    attribute_chars: int = 8_192  # in one attribute value
    text_chars: int = 65_536  # in one text node
    namespaces: int = 64  # namespace declarations in scope at any element, counted on its ancestors too

    @classmethod
    def widest(cls) -> XmlLimits:
        """The widest limits the settings allow, for documents the gateway accepted or made itself.

        A stored envelope was accepted under the limits of its day, and a mailbox answer holds up to
        100 accepted messages: neither must be refused when it is read back.
        """
        return cls(depth=LIBXML_MAX_DEPTH, elements=MAX_ELEMENTS_SETTING * 100, text_chars=MAX_TEXT_SETTING)


# The upper ends of the operator settings (gateway.settings).
MAX_ELEMENTS_SETTING = 1_000_000
MAX_TEXT_SETTING = 10_000_000  # libxml2's own cap on a text node without XML_PARSE_HUGE

_local = threading.local()


class _NoExternalResources(etree.Resolver):
    """Every URL resolves to an empty document: libxml2 opens no file and no connection.

    ``no_network`` and ``resolve_entities=False`` do not stop libxml2 from opening ``file:`` URLs
    of an external DTD or external parameter entities; a resolver is asked first, for every URL.
    What was asked for is remembered, and such a document is refused after parsing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.requested: list[str] = []

    def resolve(self, system_url: str, public_id: str, context: Any = None) -> Any:
        self.requested.append(system_url or public_id or "")
        return self.resolve_string("", context, base_url=None)


class _LocalFilesOnly(etree.Resolver):
    """Files under the given folders load as usual; any other URL is a configuration error."""

    def __init__(self, folders: Iterable[Path]) -> None:
        super().__init__()
        self.folders = tuple(folder.resolve() for folder in folders)

    def resolve(self, system_url: str, public_id: str, context: Any = None) -> Any:
        url = urllib.parse.urlsplit(system_url or "")
        if url.scheme not in ("", "file") or url.netloc not in ("", "localhost"):
            raise ConfigurationError(f"a schema refers to {system_url!r}; only local schema files are loaded")
        path = Path(urllib.request.url2pathname(url.path) if url.scheme else system_url).resolve()
        if not any(path.is_relative_to(folder) for folder in self.folders):
            raise ConfigurationError(f"a schema refers to {path}, outside {', '.join(map(str, self.folders))}")
        return None  # libxml2 reads the file itself


def hardened_parser() -> etree.XMLParser:
    """A fresh lxml parser with every dangerous feature switched off and no URL ever resolved.

    Parsing with it does not refuse anything by itself: :func:`parse_untrusted` does.
    """
    parser = etree.XMLParser(**_OPTIONS)
    parser.resolvers.add(_NoExternalResources())
    return parser


def schema_parser(*folders: Path) -> etree.XMLParser:
    """A parser for the gateway's own WSDL and XSD files: it reads files only from ``folders``.

    Their imports and includes are loaded (that is what they are for), from those folders only;
    any other location raises :class:`ConfigurationError`.
    """
    parser = etree.XMLParser(**_OPTIONS)
    parser.resolvers.add(_LocalFilesOnly(folders))
    return parser


def _thread_parser() -> tuple[etree.XMLParser, _NoExternalResources]:
    # lxml parsers are not thread-safe; one per thread avoids building one per message.
    found: tuple[etree.XMLParser, _NoExternalResources] | None = getattr(_local, "parser", None)
    if found is None:
        resolver = _NoExternalResources()
        parser = etree.XMLParser(**_OPTIONS)
        parser.resolvers.add(resolver)
        found = (parser, resolver)
        _local.parser = found
    return found


def parse_untrusted(data: bytes, limits: XmlLimits = XmlLimits()) -> etree._ElementTree:
    """Parse ``data`` as an untrusted XML document.

    Raises :class:`MalformedXml`, :class:`DtdForbidden`, :class:`EntityForbidden`,
    :class:`ProcessingInstructionForbidden` or the fault of the first limit of ``limits`` it
    exceeds; never returns a document with a DTD, an entity or a processing instruction in it.
    """
    try:
        if len(data) <= _MIN_ELEMENT_BYTES * limits.elements:
            parser, resolver = _thread_parser()
            resolver.requested.clear()
            root = etree.fromstring(data, parser=parser)
        else:
            resolver = _NoExternalResources()
            root = _parse_counting(data, limits.elements, resolver)
    except etree.XMLSyntaxError as exc:
        raise _classify_syntax_error(exc) from None
    tree = root.getroottree()
    _refuse_dtd(tree, resolver.requested)
    if _has_processing_instruction(tree):
        raise ProcessingInstructionForbidden(
            "the message contains a processing instruction (<?...?>); SOAP messages must not"
        )
    _check_limits(data, root, limits)
    return tree


def _parse_counting(data: bytes, max_elements: int, resolver: _NoExternalResources) -> etree._Element:
    """Parse in slices, counting elements as they are made, and stop as soon as there are too many.

    Only documents longer than ``4 * max_elements`` bytes come here: the count keeps a small
    message of many empty elements from making a tree many times its own size in memory.
    """
    # libxml2's push parser takes a UTF-32 byte-order mark for UTF-16's: name the encoding instead.
    encoding = None
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32LE"), (codecs.BOM_UTF32_BE, "UTF-32BE")):
        if data.startswith(bom):
            data, encoding = data[len(bom) :], name
    parser = etree.XMLPullParser(events=("start",), encoding=encoding, **_OPTIONS)
    parser.resolvers.add(resolver)
    seen = 0
    for offset in range(0, len(data), _FEED_BYTES):
        parser.feed(data[offset : offset + _FEED_BYTES])
        seen += sum(1 for _ in parser.read_events())
        if seen > max_elements:
            raise XmlTooManyElements(f"the message has more than {max_elements} elements")
    root: etree._Element = parser.close()
    if seen + sum(1 for _ in parser.read_events()) > max_elements:
        raise XmlTooManyElements(f"the message has more than {max_elements} elements")
    return root


def _refuse_dtd(tree: etree._ElementTree, requested: list[str]) -> None:
    docinfo = tree.docinfo
    dtd = docinfo.internalDTD
    if dtd is not None and any(True for _ in cast(Any, dtd).iterentities()):  # lxml-stubs lack it
        raise EntityForbidden("the document declares entities in a DTD; DTDs and entities are not allowed")
    if dtd is not None or docinfo.doctype or docinfo.system_url or docinfo.public_id or requested:
        raise DtdForbidden("the document has a document type declaration; DTDs are not allowed")


_PROCESSING_INSTRUCTIONS = etree.XPath("boolean(//processing-instruction())")


def _has_processing_instruction(tree: etree._ElementTree) -> bool:
    # Evaluated on the document, so PIs before and after the root element count too.
    return bool(_PROCESSING_INSTRUCTIONS(tree))


# --- the limits ---------------------------------------------------------------------------------


_LONG_TEXT = etree.XPath("boolean(//text()[string-length() > $limit])")
_LONG_ATTRIBUTE = etree.XPath("boolean(//@*[string-length() > $limit])")


def _check_limits(data: bytes, root: etree._Element, limits: XmlLimits) -> None:
    """Every check is linear; those whose answer the byte count already gives are skipped."""
    if _deeper_than(limits.depth)(root):
        raise XmlTooDeep(f"elements nest more than {limits.depth} levels deep")
    # Every attribute needs a literal "=" and every namespace declaration a literal "xmlns": in a
    # document read as UTF-8 (the usual case) counting those bytes bounds both, at C speed.
    utf8 = _read_as_utf8(data, root)
    if not (utf8 and data.count(b"=") <= limits.attributes and data.count(b"xmlns") <= limits.namespaces):
        _check_attributes_and_namespaces(root, limits)
    # A text node or attribute value has at most as many characters as the message has bytes.
    if len(data) > limits.text_chars and _LONG_TEXT(root, limit=limits.text_chars):
        raise XmlTextTooLong(f"a text node is longer than {limits.text_chars} characters")
    if len(data) > limits.attribute_chars and _LONG_ATTRIBUTE(root, limit=limits.attribute_chars):
        raise XmlAttributeTooLong(f"an attribute value is longer than {limits.attribute_chars} characters")


def _read_as_utf8(data: bytes, root: etree._Element) -> bool:
    """Whether libxml2 read ``data`` as UTF-8 (or its ASCII subset).

    ``docinfo.encoding`` is the declared encoding, UTF-8 when none is declared; libxml2 detects
    UTF-16 and UTF-32 from the first bytes whatever is declared, so those must show ASCII first.
    """
    ascii_start = (data[:1] == b"<" and data[1:2] != b"\x00") or data[:3] == b"\xef\xbb\xbf"
    encoding = (root.getroottree().docinfo.encoding or "UTF-8").upper()
    return ascii_start and encoding in ("UTF-8", "UTF8", "US-ASCII", "ASCII")


def _check_attributes_and_namespaces(root: etree._Element, limits: XmlLimits) -> None:
    in_scope = 0
    for event, item in etree.iterwalk(root, events=("start", "start-ns", "end-ns")):
        if event == "start":
            # len() counts the element's attribute list; reading values one by one would be
            # quadratic in lxml (each lookup walks the list again).
            count = len(cast(etree._Element, item).attrib)
            if count > limits.attributes:
                raise XmlTooManyAttributes(
                    f"an element has {count} attributes; at most {limits.attributes} are allowed"
                )
        elif event == "start-ns":
            in_scope += 1
            if in_scope > limits.namespaces:
                raise XmlTooManyNamespaces(
                    f"more than {limits.namespaces} namespace declarations are in scope at one element"
                )
        else:
            in_scope -= 1


@lru_cache(maxsize=8)
def _deeper_than(limit: int) -> etree.XPath:
    # "/*/*/.../*" with limit + 1 steps selects any element nested deeper than the limit; libxml2
    # evaluates it in C, which is far cheaper than walking the tree in Python for every message.
    return etree.XPath("boolean(/" + "/".join(["*"] * (limit + 1)) + ")")


# --- syntax errors ------------------------------------------------------------------------------


def _error_codes(*names: str) -> frozenset[int]:
    return frozenset(int(getattr(etree.ErrorTypes, name)) for name in names)


# Errors that only an entity reference or declaration can cause (libxml2's own names).
_ENTITY_ERRORS = _error_codes(
    "ERR_UNDECLARED_ENTITY",
    "WAR_UNDECLARED_ENTITY",
    "ERR_ENTITY_LOOP",
    "ERR_ENTITY_IS_EXTERNAL",
    "ERR_ENTITY_IS_PARAMETER",
    "ERR_UNPARSED_ENTITY",
    "ERR_ENTITY_PROCESSING",
    "ERR_ENTITY_BOUNDARY",
    "ERR_ENTITY_PE_INTERNAL",
    "ERR_EXT_ENTITY_STANDALONE",
    "ERR_ENTITY_NOT_STARTED",
    "ERR_ENTITY_NOT_FINISHED",
    "ERR_ENTITYREF_IN_DTD",
    "ERR_PEREF_AT_EOF",
    "ERR_PEREF_IN_PROLOG",
    "ERR_PEREF_IN_EPILOG",
    "ERR_PEREF_IN_INT_SUBSET",
    "ERR_PEREF_NO_NAME",
    "ERR_PEREF_SEMICOL_MISSING",
)
# Errors that only a document type declaration can cause.
_DTD_ERRORS = _error_codes(
    "ERR_DOCTYPE_NOT_FINISHED",
    "ERR_INT_SUBSET_NOT_FINISHED",
    "ERR_EXT_SUBSET_NOT_FINISHED",
    "ERR_ATTLIST_NOT_STARTED",
    "ERR_ATTLIST_NOT_FINISHED",
    "ERR_ELEMCONTENT_NOT_STARTED",
    "ERR_ELEMCONTENT_NOT_FINISHED",
    "ERR_NOTATION_NOT_STARTED",
    "ERR_NOTATION_NOT_FINISHED",
    "ERR_NOTATION_PROCESSING",
    "ERR_CONDSEC_NOT_STARTED",
    "ERR_CONDSEC_NOT_FINISHED",
    "ERR_CONDSEC_INVALID",
    "ERR_CONDSEC_INVALID_KEYWORD",
    "ERR_CHARREF_IN_DTD",
)
_RESOURCE_LIMIT = int(etree.ErrorTypes.ERR_RESOURCE_LIMIT)
_POSITION = re.compile(r", line [0-9]+, column [0-9]+\Z")


def _classify_syntax_error(exc: etree.XMLSyntaxError) -> Exception:
    code, text = cast(Any, exc).code, (exc.msg or str(exc))  # lxml-stubs lack .code
    # libxml2's message ends with the position that _line() reports: say it once.
    text = _POSITION.sub("", text)
    if code in _ENTITY_ERRORS or (code == _RESOURCE_LIMIT and "amplification" in text):
        return EntityForbidden(f"entities are not allowed: {text} ({_line(exc)})")
    if code in _DTD_ERRORS:
        return DtdForbidden(f"the document has a document type declaration; DTDs are not allowed ({_line(exc)})")
    if code == _RESOURCE_LIMIT and "depth" in text:
        return XmlTooDeep("elements nest deeper than the parser allows")
    if code == _RESOURCE_LIMIT and "Text node" in text:
        return XmlTextTooLong(f"a text node is longer than the parser allows ({_line(exc)})")
    return MalformedXml(f"the message is not well-formed XML: {text} ({_line(exc)})")


def _line(exc: etree.XMLSyntaxError) -> str:
    return f"line {exc.lineno}, column {exc.offset}" if exc.lineno else "at the start"
