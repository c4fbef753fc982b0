"""The application factory. Nothing is created at import time."""

from __future__ import annotations

import logging

from flask import Flask

from gateway.clock import Clock, SystemClock
from gateway.delivery.broker import make_broker
from gateway.intake import views as intake_views
from gateway.intake.catalog import ServiceCatalog
from gateway.intake.pipeline import Pipeline, default_stages
from gateway.settings import Settings
from gateway.store.db import connect, session_factory
from gateway.web import health
from gateway.web.context import Gateway

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> Flask:
    """A gateway application for ``settings`` (default: from the environment).

    The database must already be initialised (``gateway init``); the app does not migrate it.
    """
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()
    engine = connect(settings.database_url)
    sessions = session_factory(engine)
    catalog = ServiceCatalog(settings.schemas_dir)
    pipeline = Pipeline(default_stages(catalog, settings.max_xml_depth), sessions)
    context = Gateway(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        catalog=catalog,
        pipeline=pipeline,
        broker=make_broker(settings),
    )
    app = Flask("gateway")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_message_bytes
    context.init_app(app)
    app.register_blueprint(intake_views.blueprint)
    app.register_blueprint(health.blueprint)
    if settings.is_embedded:
        log.warning("embedded default: SQLite, in-process broker, development keys; not for production")
    return app
