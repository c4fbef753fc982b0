"""The one hardened parser: every classic XML attack is refused with its own fault code."""

from __future__ import annotations

import pytest

from gateway.errors import DtdForbidden, EntityForbidden, MalformedXml, XmlTooDeep
from gateway.xmlparse import parse_untrusted

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
        (b"<foo>&undeclared;</foo>", EntityForbidden),
        (b"<a>" * 120 + b"</a>" * 120, XmlTooDeep),
        (b"<a>" * 5000 + b"</a>" * 5000, XmlTooDeep),
        (b"<a><b></a>", MalformedXml),
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
        "undeclared-entity",
        "deep-120",
        "deep-5000",
        "mismatched-tags",
        "empty",
        "text",
    ],
)
def test_attacks_are_refused_with_their_own_code(document: bytes, fault: type[Exception]) -> None:
    with pytest.raises(fault):
        parse_untrusted(document, max_depth=100)


def test_plain_documents_parse_and_keep_their_text() -> None:
    tree = parse_untrusted(b'<?xml version="1.0"?><!-- note --><a x="1"><b>&lt;!DOCTYPE &amp; co</b></a>')
    assert tree.getroot().findtext("b") == "<!DOCTYPE & co"


def test_depth_limit_is_configurable() -> None:
    document = b"<a>" * 30 + b"</a>" * 30
    parse_untrusted(document, max_depth=30)
    with pytest.raises(XmlTooDeep):
        parse_untrusted(document, max_depth=29)


def test_utf16_documents_without_dtd_are_accepted() -> None:
    document = '<?xml version="1.0" encoding="UTF-16"?><a>中文</a>'.encode("utf-16")
    assert parse_untrusted(document).getroot().text == "中文"
