"""``gateway demo``: a gateway on the embedded default, the agency systems, and a graduation season.

1. A new gateway home (a temporary folder, or ``--home``): ``gateway init`` (database, development CA,
   gateway key, secrets), then the cast registered as ``gateway init --demo`` registers the
   demonstration participants — the push agencies with the endpoints they now serve on loopback
   ports — each with a key and certificate of its own.
2. ``gateway serve`` as a real process on that home (SQLite, in-process delivery worker).
3. The agency systems connect (the WSDL from the gateway), poll their mailboxes or wait for pushes;
   an auditor account is added; the season's steps are played, with a progress bar on stderr:
   the agencies through the SOAP endpoint, the graduates in the portal (``gateway.demo.portal``).
4. Once every delivery is delivered and the audit log's sequencer has caught up, the summary is read
   from the database and printed, with the pages to open and the accounts to sign in with
   (``gateway.demo.accounts``); ``--keep-running`` leaves everything running until Ctrl-C.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from agencies.base import PUSH, Agency
from agencies.documents import CHINA
from agencies.hosting import PushEndpoint
from agencies.records import PORTAL_PAGES, PORTAL_SERVICES, Graduate
from agencies.university import University
from gateway.audit.models import AuditCheckpoint, AuditLogState
from gateway.bootstrap import initialise
from gateway.clock import Clock, SystemClock, beijing_day
from gateway.demo.accounts import add_auditor, new_password, write_credentials
from gateway.demo.cast import Cast, load_cast
from gateway.demo.graduates import make_graduates
from gateway.demo.portal import PortalServices, PortalSite
from gateway.demo.process import DemoError, free_port, gateway_env, log_to, port_free, served_gateway
from gateway.demo.season import Portal, Progress, Season, SeasonFailed
from gateway.demo.setup import StoreOperator, build_agencies, enrol
from gateway.demo.steps import STEPS
from gateway.demo.summary import Page, Summary, read_summary
from gateway.errors import GatewayError
from gateway.graduates.models import GraduateAccount
from gateway.grants.services import create_grant
from gateway.grants.tokens import GrantTokens
from gateway.messages.models import Delivery, DeliveryStatus
from gateway.privacy import IdentityHasher
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction

log = logging.getLogger(__name__)
OVERDUE_LOOKAHEAD = timedelta(days=31)  # the summary looks at the archive clocks a month on
PAGES = (  # what a visitor opens
    ("graduate portal", "/graduate/"),
    ("auditor UI", "/audit/"),
    ("log checkpoint", "/log/checkpoint"),
    ("directory", "/directory"),
    ("WSDL", "/soap?wsdl"),
)


@dataclass(frozen=True)
class DemoOptions:
    graduates: int = 200
    seed: int = 2026
    home: Path | None = None
    port: int = 8080  # 0: any free port
    keep_running: bool | None = None  # None: keep serving when the output is a terminal
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
        settings = Settings.from_env(gateway_env(home, port), base_dir=home)
        stack.enter_context(log_to(home / "demo.log"))
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
        auditor_password = add_auditor(sessions, clock)
        portals: dict[str, Portal] = {
            PORTAL_PAGES: PortalSite(base_url),
            PORTAL_SERVICES: PortalServices(settings, sessions, clock),
        }
        season = Season(
            cast,
            graduates,
            {a.id: a for a in agencies.values()},
            StoreOperator(settings, sessions, clock),
            _NullProgress(),
            portals,
            new_password,
            options.step_timeout,
        )
        summary = Summary(graduates=len(graduates), seed=options.seed, base_url=base_url)
        _play(season, sessions, list(agencies.values()), progress, summary, options.step_timeout)
        summary.planned_refusals = dict(season.planned_refusals())
        summary.pages = pages(settings, base_url)
        graduate = demo_graduate(season)
        if graduate is not None and summary.season_error is None:
            hand_over_grant(settings, sessions, clock, cast, graduate[0])
        summary.sign_ins = write_credentials(home, base_url, auditor_password, graduate, options.home is not None)
        now = clock.now()
        with transaction(sessions) as session:
            # "On that day" as gateway archives overdue --at and the auditor UI judge it: at its end, Beijing time.
            read_summary(session, settings, summary, now, beijing_day(now + OVERDUE_LOOKAHEAD))
        report(summary)
        keep = options.keep_running if options.keep_running is not None else out.isatty()
        _print_environment(out, home, port, kept=keep or options.home is not None)
        if keep:
            for agency in agencies.values():
                agency.start_polling()
            _keep_running(out, base_url)
        else:
            out.write(STOPPING)
            out.flush()
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
    port = options.port or free_port()
    if not port_free(port):
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
    total = sum(step.units(season) for step in STEPS) + 1
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
    for label, path in PAGES:
        bare = path.split("?")[0]
        available = any(rule == bare or rule.startswith(bare.rstrip("/") + "/") for rule in rules)
        found.append(Page(label, base_url + path, available))
    return found


def demo_graduate(season: Season) -> tuple[Graduate, str] | None:
    """The graduate a visitor signs in as, with the password: the first who used the portal's pages and
    has a grant (the season's first story: an open offer, an archive in transit), or else any with an account."""
    with_accounts = [g for g in season.graduates if g.index in season.credentials]
    chosen = sorted(with_accounts, key=lambda g: (g.portal != PORTAL_PAGES, g.authorisation is None, g.index))
    return (chosen[0], season.credentials[chosen[0].index]) if chosen else None


def hand_over_grant(
    settings: Settings, sessions: sessionmaker[Session], clock: Clock, cast: Cast, graduate: Graduate
) -> None:
    """An active grant for the demo graduate (the season's own was revoked), as they would make it in the
    portal: the hukou office may verify identity, education and archive for settlement, five times in 30 days."""
    hasher = IdentityHasher.from_file(settings.keys_dir / "secrets" / "identity-hash.key")
    tokens = GrantTokens.from_keys_dir(settings.keys_dir, settings.key_passphrase)
    with transaction(sessions) as session:
        account = session.scalar(
            select(GraduateAccount).where(GraduateAccount.identity_hash == hasher(graduate.identity_number))
        )
        if account is None:
            return
        hukou = cast.organisation("hukou_office").credit_code
        facts = ("identity_match", "education", "archive")
        create_grant(session, tokens, account, hukou, facts, "settlement", None, clock.now(), valid_days=30, max_uses=5)


STOPPING = """
!!! The demo stops now: the gateway and the agency systems shut down, and the pages and accounts
!!! above stop working. Run `gateway demo --keep-running` (or run it in a terminal) to keep them
!!! serving until Ctrl-C.
"""


def _print_environment(out: TextIO, home: Path, port: int, kept: bool) -> None:
    """The variables that point the command line (``gateway grants list``, ``gateway audit verify``...) here."""
    if not kept:
        return
    variables = {k: v for k, v in gateway_env(home, port).items() if v}
    out.write("\nTo use the command line on this demo's gateway, in another terminal:\n")
    out.writelines(f"  export {name}={value}\n" for name, value in variables.items())
    out.flush()


def _keep_running(out: TextIO, base_url: str) -> None:
    out.write(f"\nThe gateway and the agency systems keep running on {base_url}; Ctrl-C stops them.\n")
    out.flush()
    stop = threading.Event()
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        out.write("stopping\n")


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
