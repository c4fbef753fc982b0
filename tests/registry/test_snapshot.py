"""The registry snapshot: loaded in one go, reloaded when and only when the registry's version
moved, shared by threads, and as prompt at the intake as the database itself."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.access.models import AccessOverride
from gateway.access.rules import load_rules
from gateway.access.services import add_override, remove_override
from gateway.cli import main
from gateway.pki.participants import issue_certificate
from gateway.registry import snapshot as snapshot_module
from gateway.registry.models import RegistryVersion
from gateway.registry.services import get_participant, set_enabled
from gateway.registry.snapshot import RegistrySnapshot, RegistryView
from gateway.registry.updates import ChangedBy, update_participant
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction
from gateway.web.app import create_app
from tests.conftest import (
    AGENCY_BEIJING,
    AGENCY_CHAOYANG,
    EDUCATION_DEPARTMENT,
    UNIVERSITY,
    Signer,
    example,
)

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
BY = ChangedBy("operator tester", "command line")
NS = {"gw": "urn:gradex:gateway:1"}


@pytest.fixture
def engine(store_settings: Settings) -> Iterator[Engine]:
    created = connect(store_settings.database_url)
    yield created
    created.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def refreshed(snapshot: RegistrySnapshot, sessions: sessionmaker[Session]) -> RegistryView:
    with transaction(sessions) as session:
        return snapshot.refresh(session)


def statements(engine: Engine) -> list[str]:
    """The SQL statements run on ``engine`` from now on (appended as they run)."""
    seen: list[str] = []

    def note(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", note)
    return seen


def test_a_refresh_with_nothing_changed_reads_one_row_and_keeps_the_view(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    snapshot = RegistrySnapshot()
    first = refreshed(snapshot, sessions)
    assert first.participant(UNIVERSITY) is not None and first.participant(UNIVERSITY).enabled  # type: ignore[union-attr]
    seen = statements(engine)
    with transaction(sessions) as session:
        again = snapshot.refresh(session)
        assert snapshot.view(session) is again  # the transaction's view, given again without a query
    assert again is first
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1 and "FROM registry_version" in selects[0]


def test_a_batch_reads_the_version_once_for_all_its_messages(engine: Engine, sessions: sessionmaker[Session]) -> None:
    """The group commit runs each message in a savepoint of one transaction: one refresh serves all."""
    snapshot = RegistrySnapshot()
    refreshed(snapshot, sessions)
    seen = statements(engine)
    with transaction(sessions) as session:
        views = []
        for _message in range(3):
            with session.begin_nested():
                views.append(snapshot.view(session))
    assert views[0] is views[1] is views[2]
    assert len([s for s in seen if "registry_version" in s]) == 1


def test_view_refreshes_in_a_transaction_that_has_none_yet(sessions: sessionmaker[Session]) -> None:
    snapshot = RegistrySnapshot()
    with transaction(sessions) as session:
        view = snapshot.view(session)
        assert snapshot.view(session) is view
    with transaction(sessions) as session:
        set_enabled(session, UNIVERSITY, False, NOW)
    with transaction(sessions) as session:
        later = snapshot.view(session)  # a new transaction: its own refresh
    assert later is not view and not later.participant(UNIVERSITY).enabled  # type: ignore[union-attr]


def _disable(session: Session, settings: Settings) -> Callable[[RegistryView], bool]:
    set_enabled(session, UNIVERSITY, False, NOW)
    return lambda view: not view.participant(UNIVERSITY).enabled  # type: ignore[union-attr]


def _certificate(session: Session, settings: Settings) -> Callable[[RegistryView], bool]:
    issued = issue_certificate(session, settings, UNIVERSITY, datetime.now(UTC))
    fingerprint = issued.certificate.fingerprint(hashes.SHA256()).hex()
    return lambda view: view.certificate_holder(fingerprint) == UNIVERSITY


def _override(session: Session, settings: Settings) -> Callable[[RegistryView], bool]:
    add_override(session, load_rules(), {"DestinationRegistration"}, UNIVERSITY, "*", "deny", "a test", NOW)
    return lambda view: [o.effect for o in view.overrides_for(UNIVERSITY)] == ["deny"]


def _regions(session: Session, settings: Settings) -> Callable[[RegistryView], bool]:
    update_participant(session, get_participant(session, AGENCY_CHAOYANG), {"regions_served": ["110101"]}, BY, NOW)
    return lambda view: (
        [p.id for p in view.responsible_for("talent_service_agency", "110101")] == [AGENCY_CHAOYANG]
        and not view.responsible_for("talent_service_agency", "110105")
    )


def _name(session: Session, settings: Settings) -> Callable[[RegistryView], bool]:
    update_participant(session, get_participant(session, AGENCY_BEIJING), {"name": "Renamed agency"}, BY, NOW)
    return lambda view: view.participant(AGENCY_BEIJING).name == "Renamed agency"  # type: ignore[union-attr]


CHANGES = {
    "participant disabled": _disable,
    "certificate registered": _certificate,
    "override added": _override,
    "regions served changed": _regions,
    "directory entry renamed": _name,
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_through_the_registry_s_writers_reloads_the_snapshot(
    store_settings: Settings, sessions: sessionmaker[Session], change: str
) -> None:
    snapshot = RegistrySnapshot()
    before = refreshed(snapshot, sessions)
    with transaction(sessions) as session:
        shows = CHANGES[change](session, store_settings)
    assert not shows(before)  # the view held is immutable: the change is not in it
    after = refreshed(snapshot, sessions)
    assert after.version > before.version
    assert shows(after)


def test_a_removed_override_leaves_the_snapshot(store_settings: Settings, sessions: sessionmaker[Session]) -> None:
    snapshot = RegistrySnapshot()
    with transaction(sessions) as session:
        _override(session, store_settings)
    assert refreshed(snapshot, sessions).overrides_for(UNIVERSITY)
    with transaction(sessions) as session:
        remove_override(session, session.scalars(select(AccessOverride.id)).one(), NOW)
    assert refreshed(snapshot, sessions).overrides_for(UNIVERSITY) == ()


def test_a_view_never_goes_back(sessions: sessionmaker[Session]) -> None:
    snapshot = RegistrySnapshot()
    held = refreshed(snapshot, sessions)
    with transaction(sessions) as session:  # as a transaction reading an older version would see it
        session.execute(update(RegistryVersion).values(version=held.version - 1))
    assert refreshed(snapshot, sessions) is held


def test_a_refresh_that_finds_its_view_current_takes_no_lock(sessions: sessionmaker[Session]) -> None:
    snapshot = RegistrySnapshot()
    held = refreshed(snapshot, sessions)
    got: list[RegistryView] = []
    with snapshot._loading:  # a loader at work
        reader = threading.Thread(target=lambda: got.append(refreshed(snapshot, sessions)))
        reader.start()
        reader.join(timeout=10)
        assert got == [held]  # answered while the lock is still held


def test_threads_that_find_the_version_moved_load_it_once(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = RegistrySnapshot()
    refreshed(snapshot, sessions)
    with transaction(sessions) as session:
        set_enabled(session, UNIVERSITY, False, NOW)
    loads: list[int] = []
    real_load = snapshot_module.load_view

    def counted(session: Session, version: int) -> RegistryView:
        loads.append(version)
        time.sleep(0.2)  # a slow load: the other threads find the version moved meanwhile and wait for it
        return real_load(session, version)

    monkeypatch.setattr(snapshot_module, "load_view", counted)
    start = threading.Barrier(6)
    views: list[RegistryView] = []

    def reader() -> None:
        start.wait()
        views.append(refreshed(snapshot, sessions))

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    assert len(views) == 6 and all(view is views[0] for view in views)
    assert not views[0].participant(UNIVERSITY).enabled  # type: ignore[union-attr]


# --- at the intake: the app's snapshot, the operator's command line in another process ----------


def cli(settings: Settings, *args: str) -> None:
    env = {
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_KEYS_DIR": str(settings.keys_dir),
        "GATEWAY_DATABASE_URL": settings.database_url,
    }
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.output


def fault(client: FlaskClient, data: bytes) -> tuple[str | None, str | None]:
    body = etree.fromstring(client.post("/soap", data=data, content_type="text/xml").data)
    return (
        body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS),
        body.findtext(".//gw:FaultDetail/gw:Message", namespaces=NS),
    )


@pytest.fixture
def client(store_settings: Settings) -> Iterator[FlaskClient]:
    app = create_app(store_settings)
    yield app.test_client()
    app.extensions["gateway"].engine.dispose()


def registration(sign: Signer, **options: Any) -> bytes:
    data = wrap(
        example("destination-registration"),
        sender=UNIVERSITY,
        recipient=EDUCATION_DEPARTMENT,
        service="DestinationRegistration",
        message_id=str(uuid.uuid4()),
    )
    return sign(data, **options)


def test_a_sender_disabled_a_moment_ago_is_refused(store_settings: Settings, client: FlaskClient, sign: Signer) -> None:
    assert fault(client, registration(sign)) == (None, None)  # accepted: the snapshot is loaded
    cli(store_settings, "participants", "disable", UNIVERSITY)
    code, text = fault(client, registration(sign))
    assert code == "SENDER_DISABLED"
    assert text == f"sender {UNIVERSITY} (北京示范大学) is disabled"
    cli(store_settings, "participants", "enable", UNIVERSITY)
    assert fault(client, registration(sign)) == (None, None)


def test_an_override_and_a_disabled_recipient_apply_at_once(
    store_settings: Settings, client: FlaskClient, sign: Signer
) -> None:
    assert fault(client, registration(sign)) == (None, None)
    cli(store_settings, "access", "deny", UNIVERSITY, "*", "--reason", "suspended pending review")
    code, text = fault(client, registration(sign))
    assert code == "ACCESS_DENIED" and "suspended pending review" in (text or "")
    cli(store_settings, "access", "remove", "1")
    assert fault(client, registration(sign)) == (None, None)
    cli(store_settings, "participants", "disable", EDUCATION_DEPARTMENT)
    assert fault(client, registration(sign))[0] == "RECIPIENT_DISABLED"


def test_a_certificate_issued_a_moment_ago_is_registered(
    store_settings: Settings, client: FlaskClient, sign: Signer
) -> None:
    assert fault(client, registration(sign)) == (None, None)
    cli(store_settings, "keys", "issue", UNIVERSITY, "--replace")  # a new key and certificate, registered
    folder = store_settings.keys_dir / "participants" / UNIVERSITY
    assert x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())  # the signer reads the new pair
    assert fault(client, registration(sign)) == (None, None)
