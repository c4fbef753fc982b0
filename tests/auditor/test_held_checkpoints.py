"""The integrity page against checkpoints held outside the database: the newest published one, and the
last one the page showed this auditor (remembered in a file of theirs, which the database writer
cannot reach). Shortening the log in the database makes the page warn, and a verification fail."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.audit.models import AuditCheckpoint
from tests.audit.test_anchors import Log
from tests.auditor.test_integrity import words
from tests.web.helpers import csrf_token

PUBLISHED_OK = "The log holds to the newest checkpoint published outside the database"
SEEN_OK = "The log holds to the checkpoint this page showed you last"
PUBLISHED_BROKEN = "Warning: the log no longer holds to the checkpoint published outside the database."
SEEN_BROKEN = "Warning: the log no longer holds to the checkpoint this page showed you last."


@pytest.fixture
def log(auditor_app: Flask) -> Iterator[Log]:
    """The gateway's own log, as its sequencer and an insider with database access see it."""
    opened = Log(auditor_app.extensions["gateway"].settings)
    yield opened
    opened.close()


def newest_note(log: Log) -> str:
    with log.sessions() as session:
        note = session.scalars(select(AuditCheckpoint.note).order_by(AuditCheckpoint.id.desc())).first()
    assert note is not None
    return note


def verify_with_the_button(auditor: FlaskClient) -> str:
    """Start a verification run as the auditor does, and the page's words once it has ended."""
    auditor.post("/audit/integrity/verify", data={"csrf_token": csrf_token(auditor, "/audit/integrity")})
    deadline = time.monotonic() + 30
    while "Verifying:" in (text := words(auditor, "/audit/integrity?lang=en")):
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
    return text


def test_the_page_remembers_what_it_showed_and_warns_when_the_log_is_shortened(
    auditor_app: Flask, auditor: FlaskClient, log: Log
) -> None:
    settings = auditor_app.extensions["gateway"].settings
    seen = settings.seen_checkpoints_dir / "ada.checkpoint"
    assert "No checkpoint is held outside the database yet." in words(auditor, "/audit/integrity?lang=en")
    first = log.grow(10)
    text = words(auditor, "/audit/integrity?lang=en")
    assert f"{PUBLISHED_OK} ({first} entries)." in text and "Warning" not in text
    assert seen.read_text() == newest_note(log)  # the first checkpoint the page showed ada
    assert f"{SEEN_OK} ({first} entries)." in words(auditor, "/audit/integrity?lang=en")

    size = log.grow(20)
    assert f"{SEEN_OK} ({first} entries)." in words(auditor, "/audit/integrity?lang=en")
    assert seen.read_text() == newest_note(log)  # the log held to the old one: the newer one is remembered
    remembered = seen.read_text()

    keep = log.checkpoint_sizes()[-3]
    log.shorten_to(keep)
    page = auditor.get("/audit/integrity?lang=en").get_data(as_text=True)
    text = words(auditor, "/audit/integrity?lang=en")
    assert page.count('role="alert"') == 2
    assert (
        f"{PUBLISHED_BROKEN} The log's tree holds {keep} entries, fewer than the {size} of the newest published "
        "checkpoint: entries at the end were deleted" in text
    )
    assert (
        f"{SEEN_BROKEN} The log's tree holds {keep} entries, fewer than the {size} of the checkpoint you saw last: "
        "entries at the end were deleted" in text
    )
    assert seen.read_text() == remembered  # the database's older checkpoint does not replace it

    text = verify_with_the_button(auditor)
    assert "Problems found: the log has been altered" in text
    assert (
        f"{size} the log has {keep} entries, fewer than the {size} of the kept checkpoint last seen by ada on the "
        "integrity page: entries at the end were deleted" in text
    )
    assert f"fewer than the {size} of the published checkpoint {log.published.path_of(size)}" in text


def test_the_remembered_checkpoint_alone_shows_a_rewritten_log(
    auditor_app: Flask, auditor: FlaskClient, log: Log
) -> None:
    """Without the published folder (lost, or on another machine), the auditor's own memory still tells."""
    size = log.grow(14)
    words(auditor, "/audit/integrity?lang=en")  # the page shows ada the checkpoint of `size` entries
    log.shorten_to(log.checkpoint_sizes()[-2])
    shutil.rmtree(log.published.path)
    unpublished = log.sequencer
    unpublished.published = None  # the insider's sequencer publishes nothing
    log.grow(size)  # a longer log, whose first entries are no longer the ones ada saw
    text = words(auditor, "/audit/integrity?lang=en")
    assert PUBLISHED_BROKEN not in text and PUBLISHED_OK not in text
    assert (
        f"{SEEN_BROKEN} The first {size} entries no longer give the root of the checkpoint you saw last: "
        "the history was changed" in text
    )
