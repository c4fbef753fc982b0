"""The static hostile corpus (``corpus/manifest.csv``) through POST /soap, and XXE in every encoding.

Each input must be refused with its own fault code, quickly, with nothing stored, a
``message.refused`` audit entry carrying the code, no file opened (a FIFO is watched) and nothing
of a local file in the answer. The XXE inputs are sent again in UTF-16 and UTF-32 (with and
without a byte-order mark), in EBCDIC, and with their DOCTYPE behind more than 64 KiB of prolog.
"""

from __future__ import annotations

import codecs
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.settings import Settings
from gateway.web.app import create_app
from tests.adversarial.hostile import (
    CANARY_TEXT,
    CORPUS,
    Case,
    FifoWatch,
    Paths,
    manifest,
    post,
    refusals,
    stored_message_ids,
)

CASES = manifest()
# Generous for a loaded machine: each takes a few milliseconds here.
SECONDS = 2.0


def test_the_manifest_names_every_corpus_file_once() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(path.stem for path in CORPUS.glob("*.xml"))


@pytest.fixture(scope="module")
def app(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One gateway for the module: nothing here is ever stored, so the tests cannot disturb each other."""
    home = tmp_path_factory.mktemp("corpus") / "home"
    shutil.copytree(template_home, home)
    application = create_app(Settings.from_env({}, base_dir=home))
    application.config["TESTING"] = True
    yield application
    application.extensions["gateway"].engine.dispose()


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths.make(tmp_path / "bait")


def refuse(app: Flask, client: FlaskClient, paths: Paths, data: bytes, code: str) -> None:
    """``data`` is refused with ``code``, fast, audited, with nothing opened, stored or leaked."""
    with FifoWatch(paths.fifo) as watch:
        outcome = post(client, data)
    assert (outcome.status, outcome.code, outcome.faultcode) == (500, code, "soapenv:Client"), outcome.text[:2000]
    assert outcome.seconds < SECONDS
    assert not watch.opened, "the gateway opened a file named in the message"
    assert CANARY_TEXT not in outcome.text
    assert stored_message_ids(app) == []
    assert [entry["code"] for entry in refusals(app)][-1:] == [code]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_corpus_input_is_refused_with_its_code(app: Flask, client: FlaskClient, paths: Paths, case: Case) -> None:
    refuse(app, client, paths, case.data(paths), case.code)


# --- the XXE inputs in every encoding and at any offset ---------------------------------------

XXE = [case for case in CASES if case.name.startswith("xxe-") and case.name != "xxe-utf7"]
DECLARATION = '<?xml version="1.0"?>'


def declared(text: str, encoding: str) -> str:
    """``text`` with an XML declaration naming ``encoding`` (the one it has, or a new one)."""
    body = text.removeprefix(DECLARATION).lstrip()
    return f'<?xml version="1.0" encoding="{encoding}"?>\n{body}'


def padded(text: str) -> str:
    """The DOCTYPE pushed behind 70 KiB of comments and white space, past the old 64 KiB pre-check."""
    declaration, rest = (DECLARATION, text.removeprefix(DECLARATION)) if text.startswith(DECLARATION) else ("", text)
    return declaration + ("<!-- " + "x" * 1000 + " -->\n  \t") * 70 + rest


ENCODINGS = {
    "utf-16-bom": lambda text: codecs.BOM_UTF16_LE + declared(text, "UTF-16").encode("utf-16-le"),
    "utf-16-le": lambda text: declared(text, "UTF-16").encode("utf-16-le"),
    "utf-16-be": lambda text: declared(text, "UTF-16").encode("utf-16-be"),
    "utf-16-be-bom": lambda text: codecs.BOM_UTF16_BE + declared(text, "UTF-16").encode("utf-16-be"),
    "utf-32-bom": lambda text: codecs.BOM_UTF32_LE + declared(text, "UTF-32").encode("utf-32-le"),
    "utf-32-le": lambda text: declared(text, "UTF-32").encode("utf-32-le"),
    "utf-32-be": lambda text: declared(text, "UTF-32").encode("utf-32-be"),
    "utf-8-bom": lambda text: codecs.BOM_UTF8 + text.encode(),
    "utf-8-doctype-after-70-KiB": lambda text: padded(text).encode(),
    "utf-16-doctype-after-70-KiB": lambda text: declared(padded(text), "UTF-16").encode("utf-16"),
    "utf-32-doctype-after-70-KiB": lambda text: declared(padded(text), "UTF-32").encode("utf-32"),
}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("case", XXE, ids=[case.name for case in XXE])
def test_xxe_is_refused_alike_in_every_encoding_and_at_any_offset(
    app: Flask, client: FlaskClient, paths: Paths, case: Case, encoding: str
) -> None:
    text = case.data(paths).decode()
    refuse(app, client, paths, ENCODINGS[encoding](text), case.code)


EBCDIC = [case for case in XXE if case.name in ("xxe-parameter-entity-fifo", "xxe-external-dtd-fifo")]


@pytest.mark.parametrize("case", EBCDIC, ids=[case.name for case in EBCDIC])
def test_ebcdic_is_not_read_at_all(app: Flask, client: FlaskClient, paths: Paths, case: Case) -> None:
    """libxml2 as built into lxml takes no EBCDIC: refused as malformed, nothing opened."""
    data = declared(case.data(paths).decode(), "IBM037").encode("cp037")
    refuse(app, client, paths, data, "XML_MALFORMED")


def test_whether_a_named_file_exists_does_not_change_the_answer(app: Flask, client: FlaskClient, paths: Paths) -> None:
    """No existence oracle: the canary, a missing file and a FIFO give the same fault, word for word."""
    texts = set()
    for name in ("xxe-parameter-entity-canary", "xxe-parameter-entity-missing-file", "xxe-parameter-entity-fifo"):
        data = (CORPUS / f"{name}.xml").read_bytes().replace(b"@CANARY@", b"@X@").replace(b"@MISSING@", b"@X@")
        data = data.replace(b"@FIFO@", b"@X@")
        for target in (paths.canary, paths.missing, paths.fifo):
            outcome = post(client, data.replace(b"@X@", str(target).encode()))
            # The Fault word for word; the response's signed header has its own time and Ids each time.
            fault = re.search(r"<soapenv:Fault[ >].*</soapenv:Fault>", outcome.text, re.DOTALL)
            assert fault is not None, outcome.text
            texts.add((outcome.code, fault.group(0).replace(str(target), "PATH")))
    assert len(texts) == 1, texts
