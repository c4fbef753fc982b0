"""The dramatiq broker: Redis in production, an in-process stub broker on the embedded default.

Delivery actors arrive with issue 5; until then accepted messages wait in the outbox (status
``accepted``) and this module only sets up the broker and answers readiness checks.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from gateway.errors import ConfigurationError
from gateway.settings import EMBEDDED_BROKER, Settings


def make_broker(settings: Settings) -> dramatiq.Broker:
    """The broker ``settings.broker_url`` names (``stub://`` or ``redis://...``)."""
    url = settings.broker_url
    if url == EMBEDDED_BROKER:
        return StubBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBroker(url=url)  # type: ignore[no-untyped-call]
    raise ConfigurationError(f"GATEWAY_BROKER_URL must be stub:// or a redis:// URL, not {url!r}")


def ping(broker: dramatiq.Broker) -> None:
    """Raise if the broker cannot be reached (the stub broker always can)."""
    if isinstance(broker, RedisBroker):
        broker.client.ping()
