"""A served gateway for the domain tests: `gateway serve` on SQLite or on the real PostgreSQL.

The gateway runs as an operator runs it (its own process, real HTTP); the tests send signed SOAP
messages to it with the SDK's envelope and signing, and read the results back from its database
and its public pages. A few participants beyond the demonstration ones are registered before it
starts: an employer without archive management rights and a disabled agency.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
from lxml import etree
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from gateway.bootstrap import initialise
from gateway.clock import SystemClock
from gateway.registry.services import ParticipantInput, add_participant, set_enabled
from gateway.sdk.envelope import wrap
from gateway.sdk.signing import sign_envelope_bytes
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction
from tests.conftest import AGENCY_BEIJING, POSTGRES_URL, credentials, require
from tests.serving import served_gateway

NS = {"gw": "urn:gradex:gateway:1"}
NO_RIGHTS_EMPLOYER = "91110105100000021C"  # a state-owned enterprise without archive management rights
DISABLED_AGENCY = "121101064000000225"  # 丰台区人才服务中心, serves 110106, disabled
EXTRA_PARTICIPANTS = (
    ParticipantInput(
        id=NO_RIGHTS_EMPLOYER,
        name="示范国有建设有限公司",
        kind="employer",
        unit_nature="31",
        region="110105",
        archive_rights=False,
        archive_agency_id=AGENCY_BEIJING,
    ),
    ParticipantInput(
        id=DISABLED_AGENCY,
        name="北京市丰台区人才服务中心",
        kind="talent_service_agency",
        region="110106",
        regions_served=("110106",),
        contact_phone="010-63800000",
    ),
)


@dataclass(frozen=True)
class Outcome:
    status: int
    code: str | None  # the fault code, None when accepted
    message: str  # the fault message, or the response as text
    body: etree._Element


@dataclass
class ServedGateway:
    base: str
    home: Path
    settings: Settings
    sessions: sessionmaker[Session]

    def send(
        self,
        document: bytes,
        sender: str,
        recipient: str | None = None,
        *,
        role: str | None = None,
        region: str | None = None,
        service: str | None = None,
    ) -> Outcome:
        """Wrap ``document`` for ``recipient`` (or ``role`` plus ``region``), sign it as ``sender``, post it."""
        service = service or etree.QName(etree.fromstring(document)).localname
        envelope = wrap(
            document,
            sender=sender,
            recipient=recipient,
            role=role,
            region=region,
            service=service,
            message_id=str(uuid.uuid4()),
        )
        found = credentials(self.settings.keys_dir, sender)
        signed = sign_envelope_bytes(envelope, found.key, found.certificate)
        response = requests.post(
            f"{self.base}/soap", data=signed, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=30
        )
        body = etree.fromstring(response.content)
        code = body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS)
        message = body.findtext(".//gw:FaultDetail/gw:Message", namespaces=NS) or response.text
        return Outcome(response.status_code, code, message, body)

    def accepted(self, document: bytes, sender: str, recipient: str | None = None, **routing: str) -> Outcome:
        outcome = self.send(document, sender, recipient, **routing)
        assert outcome.code is None and outcome.status == 200, outcome.message
        return outcome

    def refused(self, code: str, document: bytes, sender: str, recipient: str | None = None, **routing: str) -> str:
        outcome = self.send(document, sender, recipient, **routing)
        assert outcome.code == code, outcome.message
        return outcome.message

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A `gateway` command on this gateway's home and database, as an operator runs it."""
        env = {
            **os.environ,
            "GATEWAY_DATA_DIR": str(self.home / "data"),
            "GATEWAY_KEYS_DIR": str(self.home / "keys"),
            "GATEWAY_DATABASE_URL": self.settings.database_url,
        }
        return subprocess.run(
            [sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    admin = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
    require("PostgreSQL", lambda: admin.connect().close())
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def serve_domain(store: str, template_home: Path, base: Path) -> Iterator[ServedGateway]:
    """A served gateway on ``store`` ("sqlite" or "postgresql"), for one test module."""
    home = base / "home"
    shutil.copytree(template_home, home)
    settings = Settings.from_env({}, base_dir=home)
    with ExitStack() as stack:
        if store == "postgresql":
            settings = settings.with_overrides(database_url=stack.enter_context(postgres_schema()))
            initialise(settings, SystemClock(), demo=True)  # keys reused from the home; schema and participants new
        engine = connect(settings.database_url)
        stack.callback(engine.dispose)
        with transaction(session_factory(engine)) as session:
            for data in EXTRA_PARTICIPANTS:
                add_participant(session, data, datetime.now(UTC))
            set_enabled(session, DISABLED_AGENCY, False, datetime.now(UTC))
        url = stack.enter_context(served_gateway(home, {"GATEWAY_DATABASE_URL": settings.database_url}))
        yield ServedGateway(url, home, settings, session_factory(engine))
