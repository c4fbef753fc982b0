"""Reading a business document's values (``gateway.domain.documents``): a path walked child by child.

Not a compiled XPath, which lets go of the interpreter lock at every read (why: the module's
docstring; what it cost: bench/intake/README.md, fifth pass).
"""

from __future__ import annotations

import pytest
from lxml import etree

from gateway.domain.documents import NS, first, required, text
from tests.conftest import example


@pytest.fixture
def registration() -> etree._Element:
    return etree.fromstring(example("destination-registration"))


def test_values_are_read_stripped_and_absent_ones_are_none(registration: etree._Element) -> None:
    assert text(registration, "reg:Graduate/c:Name") == "李明"
    assert required(registration, "reg:RegistrationId") == registration.findtext("reg:RegistrationId", namespaces=NS)
    assert text(registration, "reg:Graduate/c:NoSuchField") is None
    assert text(registration, "reg:NoSuchGroup/c:Name") is None
    name = first(registration, "reg:Graduate/c:Name")
    assert name is not None
    name.text = "  "
    assert text(registration, "reg:Graduate/c:Name") is None  # blank is absent
    name.text = "  李明 "
    assert text(registration, "reg:Graduate/c:Name") == "李明"
    with pytest.raises(ValueError, match="prefix"):
        text(registration, "Graduate/Name")
