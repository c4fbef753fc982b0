"""History cannot be shortened unseen: an insider with database access deletes the newest entries
together with the checkpoints (and tree nodes) that cover them, on SQLite and PostgreSQL. The
database alone cannot tell; the checkpoints published outside it, and a checkpoint an auditor
kept (a file or a URL), can. The sequencer refuses to sign a log shortened or rewritten behind
the published checkpoints, and refuses rows appended with a leaf hash their bytes do not give."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import checkpoint as notes
from gateway.audit import proofs
from gateway.audit.entries import AuditEvent
from gateway.audit.log import record, sequence
from gateway.audit.merkle import leaf_hash, verify_inclusion
from gateway.audit.models import AuditCheckpoint, AuditEntry, AuditLogState, AuditNode
from gateway.audit.publish import CheckpointDirectory
from gateway.audit.sequencer import GAP_PATIENCE, KEY_NAME, Sequencer
from gateway.bootstrap import gateway_key_paths
from gateway.cli import main
from gateway.clock import FixedClock, SystemClock
from gateway.pki.keystore import PemKeyStore
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction
from gateway.web.app import create_app
from tests.conftest import free_port


def gateway_audit(settings: Settings, *args: str, checkpoint_dir: Path | None = None) -> tuple[int, str]:
    """``gateway audit ARGS`` as an operator runs it on this gateway; (exit code, everything printed)."""
    env = {
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_KEYS_DIR": str(settings.keys_dir),
        "GATEWAY_DATABASE_URL": settings.database_url,
        "GATEWAY_CHECKPOINT_DIR": str(checkpoint_dir or settings.checkpoint_dir),
    }
    result = CliRunner().invoke(main, ["audit", *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def report(output: str) -> dict[str, object]:
    found: dict[str, object] = json.loads(output.splitlines()[-1])
    return found


class Log:
    """The gateway's log on ``settings``' database: record, sequence (publishing), and tamper as an insider."""

    def __init__(self, settings: Settings) -> None:
        self.engine = connect(settings.database_url)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        key_path, cert_path = gateway_key_paths(settings.keys_dir)
        self.published = CheckpointDirectory(settings.checkpoint_dir)
        self.sequencer = Sequencer(
            self.sessions, PemKeyStore(key_path, cert_path), SystemClock(), batch=7, published=self.published
        )

    def grow(self, count: int, label: str = "honest") -> int:
        """``count`` more entries, integrated 7 at a time (a checkpoint each); the new size."""
        with transaction(self.sessions) as session:
            for number in range(count):
                record(session, AuditEvent("test.event", datetime.now(UTC), {"number": number, "label": label}))
        while self.sequencer.run_once():
            pass
        return self.size()

    def size(self) -> int:
        with self.sessions() as session:
            state = session.get(AuditLogState, 1)
            assert state is not None
            return state.integrated

    def checkpoint_sizes(self) -> list[int]:
        with self.sessions() as session:
            return list(session.scalars(select(AuditCheckpoint.size).order_by(AuditCheckpoint.size)))

    def shorten_to(self, keep: int) -> None:
        """The attack: delete the entries from ``keep`` on, the checkpoints and nodes that cover them, and
        set the log's state back, so that the database looks exactly like the log of ``keep`` entries."""
        with transaction(self.sessions) as session:
            session.execute(delete(AuditEntry).where(AuditEntry.leaf_index >= keep))
            session.execute(delete(AuditCheckpoint).where(AuditCheckpoint.size > keep))
            for level, index in session.execute(select(AuditNode.level, AuditNode.index)).all():
                if (index + 1) << level > keep:
                    session.execute(delete(AuditNode).where(AuditNode.level == level, AuditNode.index == index))
            session.execute(update(AuditLogState).where(AuditLogState.id == 1).values(size=keep, integrated=keep))

    def append_row(self, entry: bytes, hashed: bytes) -> int:
        """A row appended behind the gateway's back, with the leaf hash given; its position."""
        with transaction(self.sessions) as session:
            state = session.get(AuditLogState, 1)
            assert state is not None
            position = state.size
            session.add(
                AuditEntry(leaf_index=position, at=datetime.now(UTC), kind="test.event", entry=entry, leaf_hash=hashed)
            )
            state.size += 1
        return position

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def log(store_settings: Settings) -> Iterator[Log]:
    opened = Log(store_settings)
    yield opened
    opened.close()


def kept_checkpoint(log: Log, folder: Path) -> Path:
    """What an auditor does: save the gateway's current checkpoint somewhere of their own."""
    with log.sessions() as session:
        note = session.scalars(select(AuditCheckpoint.note).order_by(AuditCheckpoint.id.desc())).first()
    assert note is not None
    path = folder / "kept-checkpoint.txt"
    path.write_text(note, encoding="utf-8")
    return path


def test_deleting_the_newest_entries_with_their_checkpoints_is_found_only_outside_the_database(
    store_settings: Settings, log: Log, tmp_path: Path
) -> None:
    size = log.grow(30)
    sizes = log.checkpoint_sizes()  # a checkpoint every 7 entries, and one at the end
    kept = kept_checkpoint(log, tmp_path)
    code, output = gateway_audit(store_settings, "verify", "--json", "--checkpoint", str(kept))
    assert code == 0, output
    assert report(output) == {
        "ok": True,
        "entries": size,
        "checkpoints": len(sizes),
        "published": len(sizes),
        "kept": 1,
        "problems": [],
    }

    keep = sizes[-3]  # its checkpoint stays: the database is that of an older, honest log
    log.shorten_to(keep)
    assert log.checkpoint_sizes() == sizes[:-2]
    nowhere = tmp_path / "no-published-checkpoints"
    code, output = gateway_audit(store_settings, "verify", "--json", checkpoint_dir=nowhere)
    assert (code, report(output)["problems"]) == (0, [])  # the hole: the database alone cannot tell

    code, output = gateway_audit(store_settings, "verify", "--json")
    assert code == 1
    assert report(output)["problems"] == [
        {
            "position": published,
            "what": f"the log has {keep} entries, fewer than the {published} of the published checkpoint "
            f"{log.published.path_of(published)}: entries at the end were deleted",
        }
        for published in sizes[-2:]
    ]

    code, output = gateway_audit(store_settings, "verify", "--checkpoint", str(kept), checkpoint_dir=nowhere)
    assert code == 1
    assert (
        f"position {size}: the log has {keep} entries, fewer than the {size} of the kept checkpoint {kept}: "
        "entries at the end were deleted\n" in output
    )
    assert output.splitlines()[-2:] == [
        f"no published checkpoints in {nowhere}",
        f"{keep} entries, {len(sizes) - 2} checkpoints, 0 published, 1 kept: PROBLEMS",
    ]


def test_a_rewritten_history_of_the_same_length_gives_another_root(
    store_settings: Settings, log: Log, tmp_path: Path
) -> None:
    size = log.grow(30)
    sizes = log.checkpoint_sizes()
    kept = kept_checkpoint(log, tmp_path)
    log.shorten_to(sizes[-3])
    # The insider records entries of their own, correctly hashed, up to the same size, and has a
    # sequencer that publishes nothing sign them (the gateway's own refuses: the next test).
    unpublished = Sequencer(log.sessions, log.sequencer.keys, SystemClock())
    with transaction(log.sessions) as session:
        for number in range(size - sizes[-3]):
            record(session, AuditEvent("test.event", datetime.now(UTC), {"number": number, "label": "forged"}))
    assert unpublished.run_once() == size
    nowhere = tmp_path / "no-published-checkpoints"
    assert gateway_audit(store_settings, "verify", checkpoint_dir=nowhere)[0] == 0
    code, output = gateway_audit(store_settings, "verify", "--checkpoint", str(kept), checkpoint_dir=nowhere)
    assert code == 1
    assert f"position {size}: the first {size} entries do not give the root of the kept checkpoint {kept}: " in output
    code, output = gateway_audit(store_settings, "verify")
    assert code == 1
    for published in sizes[-2:]:
        assert (
            f"position {published}: the first {published} entries do not give the root of the published "
            f"checkpoint {log.published.path_of(published)}: the history was changed" in output
        )


def test_the_sequencer_refuses_to_sign_a_log_behind_its_published_checkpoints(
    store_settings: Settings, log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(store_settings)
    client = app.test_client()
    size = log.grow(30)
    sizes = log.checkpoint_sizes()
    files = sorted(log.published.path.rglob("*.checkpoint"))
    assert [int(f.stem) for f in files] == sizes
    assert client.get("/readyz").get_json()["checks"]["audit_log"] == {"ok": True}

    keep = sizes[-3]
    log.shorten_to(keep)
    log.sequencer.batch = 1000
    caplog.set_level(logging.CRITICAL, logger="gateway.audit.sequencer")
    assert log.grow(1) == keep  # fewer entries than published: nothing is signed
    assert (
        f"the audit sequencer signs nothing: the log has {keep + 1} entries, fewer than the {size} of the "
        f"published checkpoint {log.published.path_of(size)}: entries at the end were deleted" in caplog.text
    )
    assert log.grow(size - keep) == keep  # as many again and more, but not the same ones
    assert f"the first {size} entries no longer give the root of the published checkpoint" in caplog.text
    assert log.checkpoint_sizes() == sizes[:-2]
    assert sorted(log.published.path.rglob("*.checkpoint")) == files
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["audit_log"] == {
        "ok": False,
        "reason": f"the log's tree holds {keep} entries, fewer than the {size} of the newest published checkpoint: "
        "entries at the end were deleted",
    }
    app.extensions["gateway"].engine.dispose()


def test_a_row_appended_with_a_wrong_leaf_hash_is_not_signed_into_the_log(
    store_settings: Settings, log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(store_settings)
    size = log.grow(10)
    foreign = b'{"at":"2026-06-01T08:00:00.000000Z","kind":"message.accepted","v":1}'
    position = log.append_row(foreign, leaf_hash(b"something else"))
    caplog.set_level(logging.CRITICAL, logger="gateway.audit.sequencer")
    assert log.grow(5) == size  # the honest entries after it wait behind it
    assert log.sequencer.run_once() == 0
    stops = [r.getMessage() for r in caplog.records if "stops at position" in r.getMessage()]
    assert stops == [
        f"the audit sequencer stops at position {position}: the entry was changed: it no longer hashes to "
        "its leaf hash (not signed into the log)"
    ]  # said once, not at every run
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["audit_log"]["reason"] == (
        f"the sequencer stops at position {position}: the entry was changed: it no longer hashes to its leaf hash"
    )
    code, output = gateway_audit(store_settings, "verify")
    assert code == 1
    assert (
        f"position {position}: the entry was changed: it no longer hashes to its leaf hash; "
        "the sequencer stops here and signs nothing from here on" in output
    )
    app.extensions["gateway"].engine.dispose()


def test_an_entry_changed_before_it_was_signed_in_stops_the_sequencer_until_restored(
    store_settings: Settings, log: Log
) -> None:
    size = log.grow(4)
    with transaction(log.sessions) as session:
        record(session, AuditEvent("test.event", datetime.now(UTC), {"number": 1, "label": "honest"}))
        sequence(session)  # written now, not at the commit: this transaction reads it back
        original = session.scalars(select(AuditEntry.entry).where(AuditEntry.leaf_index == size)).one()
        session.execute(
            update(AuditEntry).where(AuditEntry.leaf_index == size).values(entry=original.replace(b"honest", b"edited"))
        )
    assert log.grow(2) == size
    assert log.sequencer.stopped is not None and f"position {size}" in log.sequencer.stopped
    with transaction(log.sessions) as session:  # restored, from a backup say
        session.execute(update(AuditEntry).where(AuditEntry.leaf_index == size).values(entry=original))
    assert log.grow(0) == size + 3
    assert log.sequencer.stopped is None
    assert gateway_audit(store_settings, "verify")[0] == 0


def test_an_entry_deleted_before_it_was_signed_in_stops_the_sequencer(store_settings: Settings, log: Log) -> None:
    size = log.grow(3)
    with transaction(log.sessions) as session:
        for number in range(3):
            record(session, AuditEvent("test.event", datetime.now(UTC), {"number": number}))
    with transaction(log.sessions) as session:
        session.execute(delete(AuditEntry).where(AuditEntry.leaf_index == size))
    assert log.sequencer.run_once() == 0
    assert log.sequencer.stopped is None  # for a moment, it may be a transaction not yet committed
    later = FixedClock(datetime.now(UTC) + GAP_PATIENCE + timedelta(seconds=1))
    sequencer = Sequencer(log.sessions, log.sequencer.keys, later, published=log.published)
    assert sequencer.run_once() == 0
    assert sequencer.stopped == (
        f"the audit sequencer waits at position {size}: that entry is missing while later ones were recorded "
        "more than 60 s ago (deleted); nothing after it is signed into the log"
    )
    app = create_app(store_settings, clock=later)
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["audit_log"]["reason"] == (
        f"the sequencer waits at position {size}: that entry is missing (deleted)"
    )
    app.extensions["gateway"].engine.dispose()
    code, output = gateway_audit(store_settings, "verify")
    assert code == 1 and f"position {size}: entries {size}..{size} are missing (deleted)" in output


def test_a_row_appended_with_its_true_leaf_hash_is_signed_in(store_settings: Settings, log: Log) -> None:
    """What the log cannot tell (docs/audit.md): an insider who hashes a row correctly before the
    sequencer reaches it gets it signed in, as if the gateway had recorded it."""
    size = log.grow(3)
    forged = b'{"at":"2026-06-01T08:00:00.000000Z","kind":"message.accepted","v":1}'
    log.append_row(forged, leaf_hash(forged))
    assert log.grow(0) == size + 1
    assert gateway_audit(store_settings, "verify")[0] == 0


def test_entries_not_yet_signed_can_be_dropped_unseen_by_the_log(store_settings: Settings, log: Log) -> None:
    """What the log cannot tell: entries the sequencer has not yet signed (seconds' worth), deleted with
    the indexes they took, were never vouched for outside the database. The receipt that names one
    (leaf index and leaf hash) shows it, when its holder asks for an inclusion proof."""
    size = log.grow(3)
    with transaction(log.sessions) as session:
        recorded = record(session, AuditEvent("test.event", datetime.now(UTC), {"label": "dropped"}))
    receipt = recorded.position
    assert receipt is not None
    log.shorten_to(size)
    assert log.grow(2, label="instead") == size + 2
    assert gateway_audit(store_settings, "verify")[0] == 0
    with log.sessions() as session:
        proof = proofs.inclusion(session, index=receipt.leaf_index, size=None, leaf_hash=None)
        latest = proofs.latest_checkpoint(session)
    assert proof.leaf_hash != receipt.leaf_hash
    assert not verify_inclusion(receipt.leaf_hash, receipt.leaf_index, latest.size, proof.hashes, latest.root)


def test_an_entry_stored_as_text_is_a_finding_at_its_position(settings: Settings) -> None:
    """SQLite keeps the type a row is given: an entry written as text is reported, never a traceback."""
    log = Log(settings)
    try:
        size = log.grow(8)
        with transaction(log.sessions) as session:  # one integrated entry, one the sequencer has not reached
            session.execute(text("UPDATE audit_entries SET entry = CAST(entry AS TEXT) WHERE leaf_index = 3"))
            record(session, AuditEvent("test.event", datetime.now(UTC), {"number": 99}))
            sequence(session)  # written now, so that this transaction can change it
            session.execute(
                text("UPDATE audit_entries SET entry = CAST(entry AS TEXT) WHERE leaf_index = :i"), {"i": size}
            )
        assert log.sequencer.run_once() == 0
        assert log.sequencer.stopped is not None and f"position {size}: the entry is stored as text" in (
            log.sequencer.stopped
        )
        code, output = gateway_audit(settings, "verify", "--json")
        assert code == 1
        problems = report(output)["problems"]
        assert problems == [
            {"position": 3, "what": "the entry is stored as text, not bytes: the gateway did not write it"},
            {
                "position": size,
                "what": "the entry is stored as text, not bytes: the gateway did not write it; "
                "the sequencer stops here and signs nothing from here on",
            },
        ]
    finally:
        log.close()


class _Note(BaseHTTPRequestHandler):
    """Another node's /log/checkpoint, or a server that answers something else."""

    note = ""

    def do_GET(self) -> None:
        body = {"/log/checkpoint": self.note.encode(), "/big": b"x" * 100_000}.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"not here")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def node() -> Iterator[tuple[str, type[_Note]]]:
    port = free_port()
    handler = type("Node", (_Note,), {})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", handler
    server.shutdown()
    server.server_close()


def test_a_kept_checkpoint_from_a_url(settings: Settings, node: tuple[str, type[_Note]], tmp_path: Path) -> None:
    base, handler = node
    log = Log(settings)
    try:
        size = log.grow(20)
        sizes = log.checkpoint_sizes()
        handler.note = kept_checkpoint(log, tmp_path).read_text()
        url = f"{base}/log/checkpoint"
        code, output = gateway_audit(settings, "verify", "--checkpoint", url)
        assert (code, output.splitlines()[-1]) == (
            0,
            f"{size} entries, {len(sizes)} checkpoints, {len(sizes)} published, 1 kept: OK",
        )
        log.shorten_to(sizes[-2])
        code, output = gateway_audit(settings, "verify", "--checkpoint", url, checkpoint_dir=tmp_path / "none")
        assert code == 1
        shorter = f"the log has {sizes[-2]} entries, fewer than the {size} of the kept checkpoint {url}"
        assert f"position {size}: {shorter}" in output
    finally:
        log.close()
    for source, why in [
        (f"{base}/missing", f"Error: {base}/missing answered HTTP 404, not a checkpoint"),
        (f"{base}/big", f"Error: {base}/big answered more than 65536 bytes: not a checkpoint"),
        (str(tmp_path / "nothing.txt"), f"Error: cannot read {tmp_path / 'nothing.txt'}: "),
    ]:
        code, output = gateway_audit(settings, "verify", "--checkpoint", source)
        assert code == 1 and output.startswith(why), output


def test_a_kept_checkpoint_signed_by_another_key_is_refused_before_the_long_pass(
    settings: Settings, tmp_path: Path
) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    forged = notes.sign(notes.Checkpoint(1, bytes(32), datetime.now(UTC)), KEY_NAME, other)
    path = tmp_path / "forged.txt"
    path.write_text(forged)
    code, output = gateway_audit(settings, "verify", "--checkpoint", str(path))
    assert code == 1
    assert output == (
        f"Error: {path} is not a checkpoint signed by this gateway's key: no signature by gateway on the "
        "checkpoint; give a checkpoint note this gateway signed\n"
    )


def test_checkpoints_are_published_as_they_are_signed_and_served_to_witnesses(app: Flask) -> None:
    context = app.extensions["gateway"]
    published = CheckpointDirectory(context.settings.checkpoint_dir)
    client = app.test_client()
    assert client.get("/log/checkpoints/latest").status_code == 404
    size = context.sequencer.run_once()  # `gateway init --demo` recorded the registry
    assert size > 0
    with context.sessions() as session:
        note = session.scalars(select(AuditCheckpoint.note)).one()
    assert published.note(size) == note
    assert published.path_of(size).stat().st_mode & 0o777 == 0o444
    assert client.get("/log/checkpoints/latest").get_data(as_text=True) == note
    assert client.get(f"/log/checkpoints/{size}").get_data(as_text=True) == note
    assert client.get("/log/checkpoints").get_json() == {"start": 0, "sizes": [size], "next": None}
    assert client.get(f"/log/checkpoints?start={size + 1}").get_json()["sizes"] == []
    assert client.get(f"/log/checkpoints/{size + 1}").status_code == 404
    for bad in ("-1", "1e3", "1234567890123", "..%2F..%2Fkeys"):
        assert client.get(f"/log/checkpoints/{bad}").status_code in (400, 404)
    assert client.get("/log/checkpoints/abc").get_json()["field"] == "size"
    assert not [p for p in published.path.rglob("*") if p.name.startswith(".")]  # no temporary files left
