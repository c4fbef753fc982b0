"""Property-based fuzzing of parse -> envelope -> schema -> signature through POST /soap (Hypothesis).

The property: whatever arrives, the answer is an acceptance (200) or a specific refusal (a known
fault code other than INTERNAL_ERROR, with faultcode Client, or HTTP 413/415), within a bound on
the gateway's CPU time;
never an unhandled exception. The inputs: random XML (trees with the gateway's namespaces, Ids and
algorithm attributes, hostile snippets in text), random bytes, and byte- and tree-level mutations
of correctly signed envelopes (so that the later stages, not only the parser, are reached).

``make test`` runs a bounded budget (``GATEWAY_FUZZ_EXAMPLES``, default 100 per property: a few
seconds each). A longer run, as DEVELOPERS.md says:
``GATEWAY_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/adversarial/test_fuzz.py -p no:xdist``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.clock import FixedClock
from gateway.errors import all_fault_classes
from gateway.sdk.envelope import wrap
from gateway.sdk.signing import sign_envelope_bytes
from gateway.settings import Settings
from gateway.web.app import create_app
from tests.adversarial.hostile import Outcome, post
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, credentials, example

EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "100"))
SECONDS = 3.0
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # wall-clock time depends on the machine's load; check() bounds the CPU time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,  # nothing written into the work tree; a failure prints its reproduction
    print_blob=True,
)
CLIENT_CODES = {cls.code for cls in all_fault_classes() if cls.faultcode == "Client"}

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSU_ID = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}Id"
NAMESPACES = [
    SOAP,
    "urn:gradex:gateway:1",
    "urn:gradex:registration:1",
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "http://www.w3.org/2000/09/xmldsig#",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "urn:attacker",
    "",
]
LOCAL_NAMES = [
    "Envelope", "Header", "Body", "Routing", "MessageId", "Sender", "Security", "Timestamp", "Created",
    "Signature", "SignedInfo", "Reference", "DigestValue", "SignatureValue", "KeyInfo", "BinarySecurityToken",
    "InclusiveNamespaces", "DestinationRegistration", "Fault", "x",
]  # fmt: skip
SNIPPETS = [
    b"<!DOCTYPE r [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>", b"<!DOCTYPE r>", b"&x;", b"&lt;", b"&#0;", b"&#x10FFFF;",
    b"<?pi x?>", b"<!-- c -->", b"<![CDATA[<a>]]>", b' xmlns:a="urn:a"', b' xmlns=""', b' wsu:Id="Body-1"', b' Id="x"',
    b"<ds:Signature/>", b"</soapenv:Header>", b"<soapenv:Body>", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\r\n",
    b"x" * 70_000, b' PrefixList="#default a"', b' Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"', b"]]>",
]  # fmt: skip


@dataclass(frozen=True)
class Target:
    app: Flask
    client: FlaskClient
    signed: tuple[bytes, ...]  # correctly signed envelopes, fresh for the fixed clock


@pytest.fixture(scope="module")
def target(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One gateway for the module on a fixed clock, so that signed timestamps stay fresh for long runs."""
    home = tmp_path_factory.mktemp("fuzz") / "home"
    shutil.copytree(template_home, home)
    gateway_settings = Settings.from_env({}, base_dir=home)
    now = datetime.now(UTC).replace(microsecond=0)
    app = create_app(gateway_settings, clock=FixedClock(now))
    app.config["TESTING"] = True
    university = credentials(gateway_settings.keys_dir, UNIVERSITY)
    signed = tuple(
        sign_envelope_bytes(
            wrap(example("destination-registration"), sender=UNIVERSITY, recipient=EDUCATION_DEPARTMENT,
                 service="DestinationRegistration"),
            university.key, university.certificate, key_info=key_info, now=now,
        )
        for key_info in ("binary-token", "x509-data")
    )  # fmt: skip
    yield Target(app, app.test_client(), signed)
    app.extensions["gateway"].engine.dispose()


def check(outcome: Outcome) -> None:
    """The property: an acceptance or a specific refusal, never a failure of the gateway."""
    assert outcome.status in (200, 413, 415, 500), outcome.text[:1000]
    if outcome.status != 200:
        assert outcome.code in CLIENT_CODES, outcome.text[:2000]
        assert outcome.faultcode == "soapenv:Client", outcome.text[:2000]
    assert outcome.seconds < SECONDS


# --- random XML ------------------------------------------------------------------------------------

names = st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(LOCAL_NAMES))
texts = st.one_of(st.text(max_size=40), st.sampled_from([s.decode("latin-1") for s in SNIPPETS if len(s) < 100]))
attributes = st.dictionaries(
    st.sampled_from(["Id", WSU_ID, "URI", "Algorithm", "PrefixList", "{urn:a}b", "mustUnderstand"]),
    st.one_of(
        st.sampled_from(["#Body-1", "Body-1", "#default ds", "", "http://www.w3.org/2000/09/xmldsig#sha1"]), texts
    ),
    max_size=4,
)
trees = st.recursive(
    st.builds(lambda name, attrs, text: (name, attrs, text, []), names, attributes, texts),
    lambda children: st.builds(
        lambda name, attrs, text, kids: (name, attrs, text, kids),
        names,
        attributes,
        texts,
        st.lists(children, max_size=4),
    ),
    max_leaves=30,
)


def build(tree: tuple[tuple[str, str], dict[str, str], str, list[object]]) -> etree._Element:
    (namespace, local), attrs, text, children = tree
    element = etree.Element(f"{{{namespace}}}{local}" if namespace else local)
    # What XML cannot represent (control characters) is left out.
    for key, value in attrs.items():
        with contextlib.suppress(ValueError):
            element.set(key, value)
    with contextlib.suppress(ValueError):
        element.text = text
    for child in children:
        element.append(build(child))  # type: ignore[arg-type]
    return element


@FUZZ
@given(tree=trees, wrap_in_envelope=st.booleans())
def test_random_xml_gets_an_acceptance_or_a_specific_fault(
    target: Target, tree: tuple[tuple[str, str], dict[str, str], str, list[object]], wrap_in_envelope: bool
) -> None:
    element = build(tree)
    if wrap_in_envelope:
        envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soapenv": SOAP})
        etree.SubElement(envelope, f"{{{SOAP}}}Header").append(element)
        etree.SubElement(envelope, f"{{{SOAP}}}Body").append(copy.deepcopy(element))
        element = envelope
    check(post(target.client, etree.tostring(element, xml_declaration=True, encoding="UTF-8")))


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes_get_a_specific_fault(target: Target, data: bytes) -> None:
    check(post(target.client, data))


# --- mutations of signed envelopes -----------------------------------------------------------------

byte_edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "delete", "insert", "duplicate", "truncate"]),
        st.floats(min_value=0, max_value=1),
        st.integers(min_value=1, max_value=64),
        st.sampled_from(SNIPPETS),
        st.integers(min_value=0, max_value=255),
    ),
    min_size=1,
    max_size=4,
)


def edit_bytes(data: bytes, edits: list[tuple[str, float, int, bytes, int]]) -> bytes:
    for operation, where, length, snippet, value in edits:
        at = int(where * len(data))
        if operation == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ (value or 1)]) + data[at + 1 :]
        elif operation == "delete":
            data = data[:at] + data[at + length :]
        elif operation == "insert":
            data = data[:at] + snippet + data[at:]
        elif operation == "duplicate":
            data = data[:at] + data[at : at + length] * 2 + data[at + length :]
        else:
            data = data[:at]
    return data


@FUZZ
@given(which=st.integers(min_value=0, max_value=1), edits=byte_edits)
def test_byte_mutations_of_a_signed_envelope(
    target: Target, which: int, edits: list[tuple[str, float, int, bytes, int]]
) -> None:
    check(post(target.client, edit_bytes(target.signed[which], edits)))


tree_edits = st.lists(
    st.tuples(
        st.sampled_from(["remove", "copy", "move", "text", "attribute", "id", "wrap", "pi", "rename"]),
        st.floats(min_value=0, max_value=1),
        st.floats(min_value=0, max_value=1),
        texts,
    ),
    min_size=1,
    max_size=4,
)


def edit_tree(data: bytes, edits: list[tuple[str, float, float, str]]) -> bytes:
    root = etree.fromstring(data)
    for operation, first, second, text in edits:
        elements = list(root.iter(etree.Element))
        node, other = elements[int(first * (len(elements) - 1))], elements[int(second * (len(elements) - 1))]
        try:
            _edit(root, node, other, operation, text)
        except (ValueError, TypeError):  # an edit lxml refuses (a cycle, a control character)
            continue
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _edit(root: etree._Element, node: etree._Element, other: etree._Element, operation: str, text: str) -> None:
    parent = node.getparent()
    if operation == "remove" and parent is not None:
        parent.remove(node)
    elif operation == "copy":
        other.append(copy.deepcopy(node))
    elif operation == "move" and parent is not None and node not in other.iterancestors() and node is not other:
        other.append(node)
    elif operation == "text":
        node.text = text
    elif operation == "attribute":
        node.set("{urn:attacker}a", text)
    elif operation == "id":  # give it the Id of another element: the wrapping move
        node.set(WSU_ID, other.get(WSU_ID) or other.get("Id") or "Body-x")
    elif operation == "wrap" and parent is not None:
        wrapper = etree.Element("{urn:attacker}Wrapper")
        node.addprevious(wrapper)
        wrapper.append(node)
    elif operation == "pi":
        node.append(etree.ProcessingInstruction("x", text.replace("?>", "")))
    elif operation == "rename":
        namespace = NAMESPACES[len(text) % len(NAMESPACES)] or "urn:none"
        node.tag = f"{{{namespace}}}{etree.QName(node).localname}"


@FUZZ
@given(which=st.integers(min_value=0, max_value=1), edits=tree_edits)
def test_tree_mutations_of_a_signed_envelope(
    target: Target, which: int, edits: list[tuple[str, float, float, str]]
) -> None:
    check(post(target.client, edit_tree(target.signed[which], edits)))


def test_the_unmutated_signed_envelopes_are_accepted(target: Target) -> None:
    """So the mutations start from messages that reach every stage (run last: it stores them)."""
    for data in target.signed:
        outcome = post(target.client, data)
        assert outcome.status == 200 or outcome.code == "REPLAY", outcome.text[:1000]
