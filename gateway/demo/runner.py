"""``gateway demo``: a gateway on the embedded default, the agency systems, and a graduation season.

1. A new gateway home (a temporary folder, or ``--home``): ``gateway init`` (database, development CA,
   gateway key, secrets), then the cast registered as ``gateway init --demo`` registers the
   demonstration participants — the push agencies with the endpoints they now serve on loopback
   ports — each with a key and certificate of its own.
2. ``gateway serve`` as a real process on that home (SQLite, in-process delivery worker).
3. The agency systems connect (the WSDL from the gateway), poll their mailboxes or wait for pushes,
   and the season's steps are played, with a progress bar on stderr.
4. Once every delivery is delivered and the audit log's sequencer has caught up, the summary is read
   from the database and printed; ``--keep-running`` leaves everything running until Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from agencies.base import PUSH, Agency
from agencies.documents import CHINA
from agencies.education_department import EducationDepartment
from agencies.employer import Employer
from agencies.hosting import PushEndpoint
from agencies.hukou_office import HouseholdRegistrationOffice
from agencies.receiving import ArchiveReceivingUnit
from agencies.talent_agency import TalentServiceAgency
from agencies.university import University
from gateway.audit.models import AuditCheckpoint, AuditLogState
from gateway.bootstrap import InitReport, enrol_participants, initialise
from gateway.clock import Clock, SystemClock
from gateway.demo.cast import Cast, Member, load_cast
from gateway.demo.graduates import make_graduates
from gateway.demo.season import STEPS, Progress, Season, SeasonFailed
from gateway.demo.summary import NotBuilt, Page, Summary, read_summary
from gateway.errors import GatewayError
from gateway.messages.models import Delivery, DeliveryStatus
from gateway.pki.devca import DevelopmentCA
from gateway.pki.participants import issue_certificate, revoke_certificates
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction

log = logging.getLogger(__name__)
OVERDUE_LOOKAHEAD = timedelta(days=31)  # the summary looks at the archive clocks a month on
PAGES = (  # what a visitor opens, and what brings the pages not built yet
    ("portal", "/graduate/", "arrives with issue 6, graduate grants"),
    ("auditor UI", "/audit/", "arrives with issue 7, the auditor UI"),
    ("directory", "/directory", ""),
    ("WSDL", "/soap?wsdl", ""),
)


class DemoError(Exception):
    """The demo cannot start (a home in use, a port taken, the gateway not coming up)."""


@dataclass(frozen=True)
class DemoOptions:
    graduates: int = 200
    seed: int = 2026
    home: Path | None = None
    port: int = 8080  # 0: any free port
    keep_running: bool = False
    step_timeout: float = 120.0


def run_demo(
    options: DemoOptions,
    out: TextIO,
    progress: Callable[[int], Progress],
    report: Callable[[Summary], None],
) -> Summary:
    """Play the season, hand its summary to ``report``, and return it (``summary.ok``: all as planned).

    ``progress(total_units)`` makes the progress display. With ``keep_running`` everything stays up
    after ``report`` until Ctrl-C. Raises :class:`DemoError` when the demo cannot start.
    """
    stack = ExitStack()
    try:
        home, port = _home_and_port(options, stack)
        settings = Settings.from_env(_gateway_env(home, port), base_dir=home)
        stack.enter_context(_log_to(home / "demo.log"))
        cast = load_cast()
        graduates = make_graduates(cast, options.graduates, options.seed, datetime.now(UTC).astimezone(CHINA).year)
        agencies = build_agencies(cast)
        university = agencies["university"]
        assert isinstance(university, University)
        university.enrol(graduates)
        base_url = _start(stack, settings, home, port, cast, agencies, out)
        out.write(f"{len(graduates)} graduates; the season begins\n")
        out.flush()

        engine = connect(settings.database_url)
        stack.callback(engine.dispose)
        sessions = session_factory(engine)
        clock = SystemClock()
        season = Season(
            cast,
            graduates,
            {a.id: a for a in agencies.values()},
            StoreOperator(settings, sessions, clock),
            _NullProgress(),
            options.step_timeout,
        )
        summary = Summary(graduates=len(graduates), seed=options.seed, base_url=base_url)
        _play(season, sessions, list(agencies.values()), progress, summary, options.step_timeout)
        summary.planned_refusals = dict(season.planned_refusals())
        summary.not_built = [NotBuilt(s.name, s.description, s.arrives_with or "") for s in STEPS if not s.built]
        summary.pages = pages(settings, base_url)
        with transaction(sessions) as session:
            read_summary(session, settings, summary, clock.now() + OVERDUE_LOOKAHEAD)
        report(summary)
        if options.keep_running:
            for agency in agencies.values():
                agency.start_polling()
            _keep_running(out, base_url)
        return summary
    finally:
        stack.close()


def _home_and_port(options: DemoOptions, stack: ExitStack) -> tuple[Path, int]:
    home = options.home or Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    if options.home is None:
        stack.callback(shutil.rmtree, home, True)
    elif home.exists() and any(home.iterdir()):
        raise DemoError(f"{home} is not empty: the demo plays its season in a new home (or omit --home)")
    home.mkdir(parents=True, exist_ok=True)
    port = options.port or _free_port()
    if not _port_free(port):
        raise DemoError(f"port {port} is in use (is `make run` running?): choose another with --port")
    return home, port


def _start(
    stack: ExitStack,
    settings: Settings,
    home: Path,
    port: int,
    cast: Cast,
    agencies: dict[str, Agency],
    out: TextIO,
) -> str:
    """Initialise the home, serve the push endpoints, register the cast, serve the gateway, connect
    and start the agencies; returns the gateway's base URL. Everything is undone by ``stack``."""
    clock = SystemClock()
    initialise(settings, clock)
    endpoints = {}
    for alias, agency in agencies.items():
        if agency.delivery == PUSH:
            endpoints[alias] = PushEndpoint(agency, settings.anchors)
            stack.callback(endpoints[alias].close)
    enrol(settings, clock, cast, {alias: e.url for alias, e in endpoints.items()})
    base_url = stack.enter_context(served_gateway(home, port))
    out.write(f"Graduate Exchange Gateway on {base_url}  (home {home}; logs serve.log, demo.log)\n")
    out.write(
        f"{len(agencies)} agency systems: {len(endpoints)} push endpoints, "
        f"{len(agencies) - len(endpoints)} polling their mailboxes\n"
    )
    for agency in agencies.values():
        agency.connect(base_url, settings.keys_dir)
        agency.start()
        stack.callback(agency.stop)
    return base_url


def _play(
    season: Season,
    sessions: sessionmaker[Session],
    agencies: list[Agency],
    progress: Callable[[int], Progress],
    summary: Summary,
    timeout: float,
) -> None:
    """Play the steps, wait for the last deliveries, and let the audit log come to rest."""
    total = sum(step.units(season) for step in STEPS if step.built) + 1
    with _closing(progress(total)) as bar:
        season.progress = bar
        try:
            season.play(STEPS)
            bar.describe("waiting for the last deliveries and the audit log")
            wait_for_deliveries(sessions, timeout)
        except (SeasonFailed, GatewayError, requests.RequestException) as exc:
            # An unplanned refusal, a receipt that does not verify, the gateway gone: the summary says so.
            summary.season_error = f"{type(exc).__name__}: {exc}"
        for agency in agencies:
            agency.stop_polling()  # mailbox fetches are messages too: let the log come to rest
        wait_for_sequencer(sessions, timeout=30)
        bar.advance(1)


def build_agencies(cast: Cast) -> dict[str, Agency]:
    """One agency system per cast member, by alias."""
    education_department = cast["education_department"].id
    found: dict[str, Agency] = {}
    for alias, member in cast.members.items():
        org, delivery, kind = member.organisation, member.delivery, member.participant.kind
        agency: Agency
        if alias == "university":
            agency = University(org, delivery, education_department)
        elif kind == "education_department":
            agency = EducationDepartment(org, delivery)
        elif kind == "talent_service_agency":
            agency = TalentServiceAgency(org, delivery)
        elif kind == "employer":
            agency = Employer(
                org,
                delivery,
                member.participant.contact_name or "人力资源部",
                member.participant.contact_phone or "010-00000000",
            )
        elif kind == "household_registration_office":
            agency = HouseholdRegistrationOffice(org, delivery)
        else:  # another university: it receives the archives of the graduates it admits or employs
            agency = ArchiveReceivingUnit(org, delivery)
        found[alias] = agency
    return found


def enrol(settings: Settings, clock: Clock, cast: Cast, endpoints: dict[str, str]) -> InitReport:
    """Register the cast with its delivery settings and issue each member a key (as ``init --demo`` does:
    RSA for the demonstration participants, ECDSA P-256 for the season's additions, to show both)."""
    report = InitReport()
    demo_ids = set(cast.data["aliases"].values()) - {row["id"] for row in cast.data["participants"]}

    def with_endpoint(member: Member) -> Member:
        if member.delivery != PUSH:
            return member
        return replace(member, participant=replace(member.participant, endpoint_url=endpoints[member.alias]))

    members = [with_endpoint(m) for m in cast.members.values()]
    engine = connect(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            ca = DevelopmentCA.ensure(settings.keys_dir, clock.now(), settings.key_passphrase)
            for algorithm, chosen in (("rsa", True), ("ec", False)):
                inputs = [m.participant for m in members if (m.id in demo_ids) == chosen]
                enrol_participants(session, settings, ca, clock, inputs, report, algorithm)
    finally:
        engine.dispose()
    return report


class StoreOperator:
    """The operator's key commands, as ``gateway keys revoke`` and ``gateway keys issue`` run them."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._settings = settings
        self._sessions = sessions
        self._clock = clock

    def revoke(self, participant_id: str) -> None:
        with transaction(self._sessions) as session:
            revoke_certificates(session, self._settings, participant_id, self._clock.now())

    def issue(self, participant_id: str) -> None:
        with transaction(self._sessions) as session:
            issue_certificate(session, self._settings, participant_id, self._clock.now(), "ec")


@contextmanager
def served_gateway(home: Path, port: int, timeout: float = 60.0) -> Iterator[str]:
    """``gateway serve`` as its own process on ``home``; yields the base URL once /healthz answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(_gateway_env(home, port))
    with (home / "serve.log").open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while not _healthy(base):
                if process.poll() is not None:
                    raise DemoError(f"gateway serve exited with {process.returncode}; see {home / 'serve.log'}")
                if time.monotonic() > deadline:
                    raise DemoError(f"gateway serve did not answer {base}/healthz within {timeout:.0f} s")
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_deliveries(sessions: sessionmaker[Session], timeout: float) -> None:
    """Wait until every delivery is delivered; raises :class:`SeasonFailed` naming what is left."""
    deadline = time.monotonic() + timeout
    while True:
        with transaction(sessions) as session:
            left = dict(
                session.execute(
                    select(Delivery.status, func.count())
                    .where(Delivery.status != DeliveryStatus.DELIVERED)
                    .group_by(Delivery.status)
                ).all()
            )
        if not left:
            return
        if time.monotonic() > deadline:
            raise SeasonFailed(f"deliveries still not delivered after {timeout:.0f} s: {left}")
        time.sleep(0.2)


def wait_for_sequencer(sessions: sessionmaker[Session], timeout: float) -> None:
    """Wait until the gateway's sequencer has integrated every audit entry and signed a checkpoint of it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with transaction(sessions) as session:
            state = session.get(AuditLogState, 1)
            latest = session.scalar(select(func.max(AuditCheckpoint.size)))
        if state is not None and state.integrated == state.size and latest == state.size:
            return
        time.sleep(0.25)
    log.warning("the audit sequencer did not catch up within %.0f s; the summary verifies what is there", timeout)


def pages(settings: Settings, base_url: str) -> list[Page]:
    """The pages to open, each marked available only when the gateway's app routes it."""
    from gateway.web.app import create_app  # the app factory: its url_map says what exists

    app_log = logging.getLogger("gateway.web.app")
    level = app_log.level
    app_log.setLevel(logging.ERROR)  # built only for its url_map: its start-up warning is the served one's
    try:
        app = create_app(settings)
    finally:
        app_log.setLevel(level)
    try:
        rules = [rule.rule for rule in app.url_map.iter_rules()]
    finally:
        app.extensions["gateway"].engine.dispose()
    found = []
    for label, path, note in PAGES:
        bare = path.split("?")[0]
        available = any(rule == bare or rule.startswith(bare.rstrip("/") + "/") for rule in rules)
        found.append(Page(label, base_url + path, available, note))
    return found


def _keep_running(out: TextIO, base_url: str) -> None:
    out.write(f"\nThe gateway and the agency systems keep running on {base_url}; Ctrl-C stops them.\n")
    out.flush()
    stop = threading.Event()
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        out.write("stopping\n")


def _gateway_env(home: Path, port: int) -> dict[str, str]:
    """The embedded default on ``home``, whatever GATEWAY_* the caller's environment holds."""
    return {
        "GATEWAY_DATA_DIR": str(home / "data"),
        "GATEWAY_KEYS_DIR": str(home / "keys"),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_DATABASE_URL": "",
        "GATEWAY_BROKER_URL": "",
    }


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Log to ``path`` at INFO; the terminal keeps only warnings, so the progress bar stays readable."""
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    earlier = [(h, h.level) for h in root.handlers]
    for existing, _ in earlier:
        existing.setLevel(max(existing.level, logging.WARNING))
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)
        for existing, previous in earlier:
            existing.setLevel(previous)


class _NullProgress:
    def describe(self, text: str) -> None:
        pass

    def advance(self, units: int) -> None:
        pass


@contextmanager
def _closing(progress: Progress) -> Iterator[Progress]:
    try:
        yield progress
    finally:
        close = getattr(progress, "close", None)
        if close is not None:
            close()
