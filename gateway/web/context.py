"""What every request handler needs, built once per process by the app factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dramatiq
from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.sequencer import Sequencer
from gateway.clock import Clock
from gateway.delivery.originate import Originator
from gateway.delivery.service import DeliveryService
from gateway.grants.tokens import GrantTokens
from gateway.intake.catalog import ServiceCatalog
from gateway.intake.pipeline import Pipeline
from gateway.messages.payloads import PayloadCipher
from gateway.messages.retention import PayloadRetention
from gateway.notices.mail import Mailer
from gateway.privacy import IdentityHasher
from gateway.security.response import ResponseSigner
from gateway.security.trust import TrustStore
from gateway.settings import Settings


@dataclass(frozen=True)
class Gateway:
    settings: Settings
    clock: Clock
    engine: Engine
    sessions: sessionmaker[Session]
    catalog: ServiceCatalog
    pipeline: Pipeline
    broker: dramatiq.Broker
    delivery: DeliveryService
    sequencer: Sequencer
    hasher: IdentityHasher  # the keyed hash of identity numbers
    grant_tokens: GrantTokens  # issues and reads graduates' authorisation tokens
    originator: Originator  # sends the gateway's own messages (a graduate's answer to an offer)
    payloads: PayloadCipher
    retention: PayloadRetention
    trust: TrustStore  # the trust anchors and CRLs the intake checks certificates against (and /readyz)
    mailer: Mailer  # graduates' e-mail notices, sent by the sweep
    responses: ResponseSigner | None = None  # signs the intake's SOAP answers and faults (WS-Security)

    def periodic_tasks(self) -> tuple[Callable[[], object], ...]:
        """What every worker's sweep runs beside the delivery sweep: the audit sequencer, the retention
        purge, the graduates' e-mails."""
        return (self.sequencer.run_once, self.retention.run_once, self.mailer.run_once)

    def init_app(self, app: Flask) -> None:
        app.extensions["gateway"] = self


def gateway() -> Gateway:
    """The :class:`Gateway` of the current Flask app."""
    found: Gateway = current_app.extensions["gateway"]
    return found
