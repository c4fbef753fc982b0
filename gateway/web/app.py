"""The application factory. Nothing is created at import time."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask

from connectors.push import PushConnector
from gateway.access.policy import AccessPolicy
from gateway.access.rules import load_rules
from gateway.audit import api as audit_log_api
from gateway.audit.publish import CheckpointDirectory
from gateway.audit.sequencer import Sequencer
from gateway.auditor import views as auditor_views
from gateway.bootstrap import gateway_key_paths
from gateway.clock import Clock, SystemClock
from gateway.delivery.broker import make_broker
from gateway.delivery.originate import Originator
from gateway.delivery.plumbing import AnswerPlumbing
from gateway.delivery.policy import RetryPolicy
from gateway.delivery.service import DeliveryService
from gateway.directory import views as directory_views
from gateway.domain.services import service_rules
from gateway.domain.stage import ApplyDomain, CheckCodes, CheckDomain, DomainRules
from gateway.errors import ConfigurationError
from gateway.grants.answer import AnswerVerification
from gateway.grants.throttle import ShortCodeThrottle
from gateway.grants.tokens import GrantTokens
from gateway.intake import views as intake_views
from gateway.intake.catalog import ServiceCatalog
from gateway.intake.endpoint import SoapIntake
from gateway.intake.pipeline import Pipeline, Stages, default_stages
from gateway.messages.keyring import PayloadKeyRing
from gateway.messages.payloads import PayloadCipher
from gateway.messages.retention import PayloadRetention
from gateway.monitoring import views as monitoring
from gateway.monitoring.instruments import TimedReceipts, timed_stages
from gateway.notices.mail import Mailer
from gateway.pki.keystore import PemKeyStore
from gateway.portal import views as portal_views
from gateway.privacy import IdentityHasher
from gateway.registry.snapshot import RegistrySnapshot
from gateway.security.receipt import IssueReceipt
from gateway.security.response import ResponseSigner
from gateway.security.signer import GatewaySigner
from gateway.security.trust import TrustStore
from gateway.security.verify import CheckRegistration, VerifySignature
from gateway.settings import Settings
from gateway.staff import views as staff_views
from gateway.store.db import connect, session_factory
from gateway.web import errors, health, i18n, pages, security
from gateway.web.context import Gateway
from gateway.web.proxies import TrustedProxies

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> Flask:
    """A gateway application for ``settings`` (default: from the environment).

    The database and keys must already be initialised (``gateway init``); the app creates neither.
    Raises :class:`ConfigurationError` when something it needs is missing, including a revocation
    list that is missing or expired: the gateway does not start unable to check revocation.
    """
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()
    engine = connect(settings.database_url)
    sessions = session_factory(engine)
    catalog = ServiceCatalog(settings.schemas_dir)
    trust = TrustStore(settings.anchors, settings.crls)
    _require_revocation(trust, clock)
    key_path, cert_path = gateway_key_paths(settings.keys_dir)
    key_store = PemKeyStore(key_path, cert_path, settings.key_passphrase)
    signer = GatewaySigner(key_store)
    verify = VerifySignature(
        trust,
        max_age=timedelta(seconds=settings.timestamp_max_age_seconds),
        skew=timedelta(seconds=settings.clock_skew_seconds),
    )
    hasher = IdentityHasher.from_file(settings.keys_dir / "secrets" / "identity-hash.key")
    grant_tokens = GrantTokens.from_keys_dir(settings.keys_dir, settings.key_passphrase)
    registry = RegistrySnapshot()  # this process's: participants, certificates, overrides (loaded at first use)
    domain = DomainRules(
        services=service_rules(
            grant_tokens, ShortCodeThrottle(settings.short_code_rate_limit, settings.rate_limit_storage), registry
        ),
        access=AccessPolicy(load_rules(), registry),
        hasher=hasher,
        settings=settings,
    )
    payloads = PayloadCipher(PayloadKeyRing(settings.payload_keys_dir))
    stages = default_stages(
        catalog,
        settings.xml_limits,
        verify=verify,
        registration=CheckRegistration(payloads, registry),
        codes=CheckCodes(),
        check_domain=CheckDomain(domain),
        apply_domain=ApplyDomain(domain),
        plumbing=AnswerPlumbing(signer, payloads),
        verification=AnswerVerification(signer, hasher),
        payloads=payloads,
        registry=registry,
    )
    pipeline = Pipeline(
        Stages(checks=timed_stages(stages.checks), stages=timed_stages(stages.stages)),
        sessions,
        receipts=TimedReceipts(IssueReceipt(signer, payloads)),
        # Each batch takes the audit counter at its commit; optionally, on PostgreSQL, none at all (the
        # sequencer indexes the entries afterwards): measured, the sequencer's lock was the busier.
        defer_indexes=settings.intake_deferred_indexes and engine.dialect.name == "postgresql",
        batch_limit=settings.intake_batch_limit,
        registry=registry,  # brought up to date by the batch's look-up (gateway.intake.earlier)
    )
    broker = make_broker(settings)
    delivery = DeliveryService(
        engine=engine,
        sessions=sessions,
        broker=broker,
        connector=PushConnector(),
        signer=signer,
        clock=clock,
        payloads=payloads,
        policy=RetryPolicy(base_seconds=settings.retry_base_seconds, lease_seconds=settings.delivery_lease_seconds),
        accepted_grace=timedelta(seconds=settings.delivery_grace_seconds),
    )
    context = Gateway(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        catalog=catalog,
        pipeline=pipeline,
        broker=broker,
        delivery=delivery,
        sequencer=Sequencer(sessions, key_store, clock, published=CheckpointDirectory(settings.checkpoint_dir)),
        payloads=payloads,
        retention=PayloadRetention(sessions, clock, settings.payload_retention_days),
        hasher=hasher,
        grant_tokens=grant_tokens,
        originator=Originator(key_store, settings.platform_id, payloads),
        trust=trust,
        mailer=Mailer(sessions, settings, clock),
        responses=ResponseSigner(key_store),
    )
    app = Flask("gateway", template_folder="web/templates", static_folder="web/static")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_message_bytes
    # POST /soap is answered in front of the app's hooks and views (gateway.intake.endpoint); for
    # both, request.remote_addr is the client as the trusted front proxies report it (rate limits, audit).
    app.wsgi_app = TrustedProxies(  # type: ignore[method-assign]
        SoapIntake(app.wsgi_app, app), settings.trusted_proxies
    )
    context.init_app(app)
    security.init_app(app, settings)
    i18n.init_app(app)
    errors.init_app(app)
    pages.init_app(app)
    monitoring.init_app(app)  # /metrics, and one JSON log line per request
    # Machine clients sign their SOAP messages; CSRF tokens are for people's forms. (A POST /soap
    # reaches the app only on the metrics port, to be answered 404 there, not refused for its token.)
    security.csrf.exempt(intake_views.blueprint)
    app.register_blueprint(intake_views.blueprint)
    app.register_blueprint(staff_views.blueprint)
    app.register_blueprint(portal_views.blueprint)
    app.register_blueprint(auditor_views.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(directory_views.blueprint)
    app.register_blueprint(audit_log_api.blueprint)
    if settings.is_embedded:
        log.warning("embedded default: SQLite, in-process broker, development keys; not for production")
    return app


def _require_revocation(trust: TrustStore, clock: Clock) -> None:
    problems = trust.revocation_problems(clock.now())
    if problems:
        raise ConfigurationError(
            f"revocation cannot be checked: {'; '.join(problems)}.\n"
            "Re-issue the development CA's list with `gateway keys crl`, or put your CA's current CRL "
            "in place (GATEWAY_CRLS)."
        )
