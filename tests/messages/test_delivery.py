"""Delivery with sealed envelopes when a key is lost: push retries, pull skips, both recover once it is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.messages import keyring
from gateway.messages.keyring import PayloadKeyRing, create_key
from gateway.settings import Settings
from gateway.web.app import create_app
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer
from tests.delivery.recipients import RecordingRecipient, serve_recipient
from tests.delivery.test_push import deliveries, make_due, push_to, registration
from tests.mailbox.helpers import age_claims, ask, delivered_ids, fetch_request, send_to_pull_recipient


def lose_current_key(settings: Settings, app: Flask) -> tuple[Path, Path]:
    """Rotate, then move the old key out of the key ring; returns (where it was, where it is)."""
    folder = settings.payload_keys_dir
    old = PayloadKeyRing(folder).current.key_id
    create_key(folder, app.extensions["gateway"].clock.now())
    place, aside = folder / f"{old}.key", settings.keys_dir / "lost.key"
    place.rename(aside)
    return place, aside


@pytest.fixture
def restarted(settings: Settings) -> Iterator[list[Flask]]:
    """Apps created by the test after it changed the key ring (a process started after the loss)."""
    apps: list[Flask] = []
    yield apps
    for app in apps:
        app.extensions["gateway"].engine.dispose()


def test_a_push_whose_key_is_lost_is_a_failed_attempt_and_goes_through_once_the_key_is_back(
    app: Flask, client: FlaskClient, sign: Signer, settings: Settings, restarted: list[Flask]
) -> None:
    recipient = RecordingRecipient()
    with serve_recipient(recipient, (settings.keys_dir / "ca" / "ca.cert.pem",)) as endpoint:
        push_to(app, EDUCATION_DEPARTMENT, endpoint)
        registration(client, sign)
        place, aside = lose_current_key(settings, app)
        restarted.append(create_app(settings))
        service = restarted[0].extensions["gateway"].delivery
        [delivery] = deliveries(app)
        service.deliver(delivery.id)
        [failed] = deliveries(app)
        assert (failed.status, failed.attempts) == ("waiting_for_retry", 1)
        assert f"PayloadKeyMissing: payload key {place.stem} is not in the key ring" in (failed.last_error or "")
        assert recipient.received == []
        aside.rename(place)  # restored from the backup: the running process finds it by re-reading the folder
        make_due(app)
        service.deliver(delivery.id)
    assert [(d.status, d.attempts) for d in deliveries(app)] == [("delivered", 2)]
    [received] = recipient.received  # the SDK recipient checked the sender's signature on the original
    assert (received.sender, received.service) == (UNIVERSITY, "DestinationRegistration")


def test_a_pull_message_whose_key_is_lost_does_not_block_the_mailbox(
    app: Flask,
    client: FlaskClient,
    sign: Signer,
    settings: Settings,
    restarted: list[Flask],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keyring, "_RELOAD_SECONDS", 0.0)
    unreadable = send_to_pull_recipient(client, sign)
    place, aside = lose_current_key(settings, app)
    readable = send_to_pull_recipient(client, sign)  # sealed under the new key
    restarted.append(create_app(settings))
    later = restarted[0].test_client()
    assert delivered_ids(ask(later, sign, fetch_request(10), EDUCATION_DEPARTMENT)) == [readable]
    skipped = next(d for d in deliveries(app) if d.status == "in_delivery" and d.last_error)
    assert "PayloadKeyMissing" in (skipped.last_error or "")
    aside.rename(place)
    age_claims(app, 301)  # past the visibility timeout
    assert delivered_ids(ask(later, sign, fetch_request(10), EDUCATION_DEPARTMENT)) == [unreadable, readable]
