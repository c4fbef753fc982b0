"""The one hardened parser: every classic XML attack is refused with its own fault code, and every
limit is checked in linear time (tests/adversarial/ sends the same through POST /soap).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lxml import etree

from gateway.errors import (
    ConfigurationError,
    DtdForbidden,
    EntityForbidden,
    Fault,
    MalformedXml,
    ProcessingInstructionForbidden,
    XmlAttributeTooLong,
    XmlTextTooLong,
    XmlTooDeep,
    XmlTooManyAttributes,
    XmlTooManyElements,
    XmlTooManyNamespaces,
)
from gateway.settings import Settings
from gateway.xmlparse import XmlLimits, parse_untrusted, schema_parser

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<foo>&xxe;</foo>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE foo SYSTEM "http://127.0.0.1:9/evil.dtd">
<foo/>"""

PARAMETER_ENTITY = b"""<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><r/>"""


@pytest.mark.parametrize(
    ("document", "fault"),
    [
        (BILLION_LAUGHS, EntityForbidden),
        (EXTERNAL_ENTITY, EntityForbidden),
        (PARAMETER_ENTITY, EntityForbidden),
        (EXTERNAL_DTD, DtdForbidden),
        (b"<!-- c --><!DOCTYPE foo><foo/>", DtdForbidden),
        ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a SYSTEM "x"><a/>'.encode("utf-16"), DtdForbidden),
        (b"<!DOCTYPE r [<!ELEMENT r (a|>]><r/>", DtdForbidden),
        (b"<foo>&undeclared;</foo>", EntityForbidden),
        (b"<a>" * 120 + b"</a>" * 120, XmlTooDeep),
        (b"<a>" * 5000 + b"</a>" * 5000, XmlTooDeep),
        (b"<?pi data?><a/>", ProcessingInstructionForbidden),
        (b"<a>2025-<?split?>06-01</a>", ProcessingInstructionForbidden),
        (b"<a/><?after the root?>", ProcessingInstructionForbidden),
        (b"<a><b></a>", MalformedXml),
        (b"<a>AT&T</a>", MalformedXml),
        (b"", MalformedXml),
        (b"not xml at all", MalformedXml),
    ],
    ids=[
        "billion-laughs",
        "external-entity",
        "parameter-entity",
        "external-dtd",
        "internal-dtd",
        "utf16-dtd",
        "broken-dtd",
        "undeclared-entity",
        "deep-120",
        "deep-5000",
        "pi-in-prolog",
        "pi-splitting-a-value",
        "pi-after-root",
        "mismatched-tags",
        "bare-ampersand",
        "empty",
        "text",
    ],
)
def test_attacks_are_refused_with_their_own_code(document: bytes, fault: type[Exception]) -> None:
    with pytest.raises(fault):
        parse_untrusted(document)


def test_plain_documents_parse_and_keep_their_text() -> None:
    tree = parse_untrusted(b'<?xml version="1.0"?><!-- note --><a x="1"><b>&lt;!DOCTYPE &amp; co</b></a>')
    assert tree.getroot().findtext("b") == "<!DOCTYPE & co"


def test_a_comment_splitting_a_value_is_dropped_so_the_value_reads_whole() -> None:
    assert parse_untrusted(b"<a>2025-<!-- split -->06-01</a>").getroot().text == "2025-06-01"


def test_depth_limit_is_configurable() -> None:
    document = b"<a>" * 30 + b"</a>" * 30
    parse_untrusted(document, XmlLimits(depth=30))
    with pytest.raises(XmlTooDeep):
        parse_untrusted(document, XmlLimits(depth=29))


def test_utf16_documents_without_dtd_are_accepted() -> None:
    document = '<?xml version="1.0" encoding="UTF-16"?><a>中文</a>'.encode("utf-16")
    assert parse_untrusted(document).getroot().text == "中文"


@pytest.mark.parametrize("codec", ["utf-16", "utf-32", "utf-32-be"])
def test_long_documents_in_utf16_and_utf32_parse_too(codec: str) -> None:
    """Longer than 4 bytes per allowed element, so read in slices (the UTF-32 byte-order mark needs a hint)."""
    text = '<?xml version="1.0" encoding="{}"?><r>{}</r>'.format(codec.upper()[:6], "<a>中文</a>" * 2000)
    assert len(parse_untrusted(text.encode(codec), XmlLimits(elements=2001)).getroot()) == 2000


# --- the limits: at the limit accepted, one past it refused ----------------------------------------


def elements(count: int) -> bytes:
    return b"<r>" + b"<a/>" * (count - 1) + b"</r>"


def attributes(count: int, encoding: str = "utf-8") -> bytes:
    return ("<r " + " ".join(f'a{i}="{i}"' for i in range(count)) + "/>").encode(encoding)


def namespaces_in_scope(count: int, encoding: str = "utf-8") -> bytes:
    """``count`` declarations in scope at the innermost element: half on the root, half on its child."""
    half = count // 2
    outer = " ".join(f'xmlns:o{i}="urn:o{i}"' for i in range(half))
    inner = " ".join(f'xmlns:i{i}="urn:i{i}"' for i in range(count - half))
    return f"<r {outer}><c {inner}/></r>".encode(encoding)


@pytest.mark.parametrize(
    ("build", "limits", "fault"),
    [
        # Short documents are parsed at once (they cannot hold more elements than allowed) ...
        (elements, XmlLimits(elements=10_000), XmlTooManyElements),
        # ... longer ones are counted while they are parsed.
        (elements, XmlLimits(elements=50), XmlTooManyElements),
        (attributes, XmlLimits(), XmlTooManyAttributes),
        (lambda n: attributes(n, "utf-16"), XmlLimits(), XmlTooManyAttributes),
        (namespaces_in_scope, XmlLimits(), XmlTooManyNamespaces),
        (lambda n: namespaces_in_scope(n, "utf-16"), XmlLimits(), XmlTooManyNamespaces),
    ],
    ids=["elements", "elements-counted", "attributes", "attributes-utf16", "namespaces", "namespaces-utf16"],
)
def test_each_count_limit_allows_its_value_and_refuses_one_more(
    build: object, limits: XmlLimits, fault: type[Fault]
) -> None:
    assert callable(build)
    limit = {
        XmlTooManyElements: limits.elements,
        XmlTooManyAttributes: limits.attributes,
        XmlTooManyNamespaces: limits.namespaces,
    }[fault]
    parse_untrusted(build(limit), limits)
    with pytest.raises(fault):
        parse_untrusted(build(limit + 1), limits)


def test_namespaces_declared_on_siblings_are_not_in_scope_together() -> None:
    siblings = "".join(f'<c xmlns:p{i}="urn:p{i}"/>' for i in range(500))
    parse_untrusted(f"<r>{siblings}</r>".encode())


def test_text_and_attribute_lengths_are_bounded_in_characters() -> None:
    limits = XmlLimits(text_chars=2048, attribute_chars=1024)
    parse_untrusted(("<a>" + "中" * 2048 + "</a>").encode(), limits)
    with pytest.raises(XmlTextTooLong):
        parse_untrusted(("<a>" + "中" * 2049 + "</a>").encode(), limits)
    parse_untrusted(b'<a b="' + b"x" * 1024 + b'"/>', limits)
    with pytest.raises(XmlAttributeTooLong):
        parse_untrusted(b'<a b="' + b"x" * 1025 + b'"/>', limits)


def test_the_intake_limits_come_from_the_settings(tmp_path: Path) -> None:
    env = {"GATEWAY_MAX_XML_DEPTH": "50", "GATEWAY_MAX_XML_ELEMENTS": "500", "GATEWAY_MAX_XML_TEXT": "4096"}
    limits = Settings.from_env(env, base_dir=tmp_path).xml_limits
    assert (limits.depth, limits.elements, limits.text_chars) == (50, 500, 4096)
    with pytest.raises(ConfigurationError, match="GATEWAY_MAX_XML_DEPTH"):
        Settings.from_env({"GATEWAY_MAX_XML_DEPTH": "300"}, base_dir=tmp_path)  # libxml2 stops at 256


# --- linear time: inputs that cost seconds or minutes before ----------------------------------------

SLOW_BEFORE = [
    # The old DOCTYPE pre-check regex backtracked exponentially on these (over 60 s of GIL); they
    # are well-formed (white space, an element, a comment), so the parser accepts them at once.
    pytest.param(b" " * 32 + b"<a/><!--<!DOCTYPE-->", None, id="doctype-regex-backtracking"),
    pytest.param(" " * 40_000 + "<a/><!--<!DOCTYPE-->", None, id="doctype-regex-utf16"),
    # C14N sorts attributes in quadratic time, lxml reads attribute values in quadratic time.
    pytest.param(attributes(40_000), XmlTooManyAttributes, id="40000-attributes"),
    # Inclusive C14N and lxml's nsmap are quadratic in the namespaces in scope.
    pytest.param(namespaces_in_scope(10_000), XmlTooManyNamespaces, id="10000-namespaces"),
    # 2.5 million empty elements in 10 MiB would make a tree of about 300 MB.
    pytest.param(elements(2_500_000), XmlTooManyElements, id="2.5-million-elements"),
    pytest.param(b"<a>" + b"x" * 10_000_000 + b"</a>", XmlTextTooLong, id="10-MB-text"),
]


@pytest.mark.parametrize(("document", "fault"), SLOW_BEFORE)
def test_hostile_documents_are_refused_in_linear_time(document: bytes | str, fault: type[Fault] | None) -> None:
    data = document.encode("utf-16") if isinstance(document, str) else document
    started = time.thread_time()  # CPU time of this thread: what the input costs, however loaded the machine
    if fault is None:
        assert parse_untrusted(data).getroot().tag == "a"
    else:
        with pytest.raises(fault):
            parse_untrusted(data)
    # Each takes well under 0.2 s of CPU here (the regex took over 60 s, 40,000 attributes 8 s).
    assert time.thread_time() - started < 2.0


def test_the_element_count_stops_parsing_early_instead_of_building_the_tree() -> None:
    # Malformed at its very end: had the parser read that far, the fault would be XML_MALFORMED.
    document = elements(2_500_000).removesuffix(b"</r>") + b"<unclosed>"
    with pytest.raises(XmlTooManyElements):
        parse_untrusted(document, XmlLimits(elements=10_000))
    with pytest.raises(MalformedXml):
        parse_untrusted(document, XmlLimits(elements=5_000_000))


# --- the parser for the gateway's own schema files ---------------------------------------------------


def test_schema_parser_reads_only_from_its_folders(tmp_path: Path) -> None:
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "a.xsd").write_text('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>')
    (tmp_path / "elsewhere.xsd").write_text('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>')
    parser = schema_parser(tmp_path / "own")
    etree.parse(str(tmp_path / "own" / "a.xsd"), parser)
    for location in [(tmp_path / "elsewhere.xsd").as_uri(), "http://127.0.0.1:9/a.xsd", "../elsewhere.xsd"]:
        driver = (
            '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
            f'<xs:import namespace="urn:x" schemaLocation="{location}"/></xs:schema>'
        )
        document = etree.fromstring(driver.encode(), schema_parser(tmp_path / "own"), base_url=str(tmp_path / "own/"))
        with pytest.raises((ConfigurationError, etree.XMLSchemaParseError)):
            etree.XMLSchema(document)
