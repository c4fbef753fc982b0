from __future__ import annotations

import redis
from flask.testing import FlaskClient

from gateway.settings import Settings
from gateway.web.app import create_app
from tests.conftest import REDIS_URL, require


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json is not None and response.json["status"] == "ok"


def test_readyz_on_the_embedded_default(client: FlaskClient) -> None:
    body = client.get("/readyz").json
    assert body is not None
    assert body["status"] == "ready"
    assert body["checks"]["delivery_queue"]["broker"] == "StubBroker"


def test_readyz_not_ready_without_a_schema(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings.with_overrides(database_url=f"sqlite:///{tmp_path / 'empty.db'}"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json is not None and response.json["checks"]["database"]["ok"] is False


def test_readyz_with_redis_broker(settings: Settings) -> None:
    require("Redis", lambda: redis.Redis.from_url(REDIS_URL).ping())
    app = create_app(settings.with_overrides(broker_url=REDIS_URL))
    body = app.test_client().get("/readyz").json
    assert body is not None and body["checks"]["delivery_queue"] == {"ok": True, "broker": "RedisBroker"}


def test_readyz_with_unreachable_redis(settings: Settings) -> None:
    app = create_app(settings.with_overrides(broker_url="redis://127.0.0.1:1/0"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json is not None and response.json["checks"]["delivery_queue"]["ok"] is False
