"""Sign-in limits key on the client address the trusted proxy reports and on the account.

One attacker behind the shared front proxy locks out nobody but itself; a forged X-Forwarded-For
buys nothing; guessing one account from many addresses, or many accounts from one address, is
limited too. Only failures count.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.clock import FixedClock
from gateway.settings import Settings
from gateway.staff.models import Role
from gateway.staff.services import add_user
from gateway.store.db import transaction
from gateway.web.app import create_app
from gateway.web.security import limiter
from tests.graduates.helpers import LI_MING
from tests.web.helpers import csrf_token

PASSWORD = "limits-password-1"
WRONG = "not-the-password-1"
PROXY = "10.0.0.1"
USERS = ("ada", "bob", "cai", "dong", "eve")


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """Staff accounts behind a front proxy at 10.0.0.1 (trusted), with small limits to reach."""
    application = create_app(settings.with_overrides(trusted_proxies=("10.0.0.0/8",)), FixedClock(datetime.now(UTC)))
    application.config.update(
        TESTING=True,
        SIGN_IN_RATE_LIMIT="3 per minute",
        SIGN_IN_ACCOUNT_RATE_LIMIT="5 per minute",
        SIGN_IN_ADDRESS_RATE_LIMIT="8 per minute",
    )
    with transaction(application.extensions["gateway"].sessions) as session:
        for username in USERS:
            add_user(session, username, Role.AUDITOR, PASSWORD, datetime.now(UTC))
    yield application
    application.extensions["gateway"].engine.dispose()


def browser(app: Flask, forwarded: str | None = None, peer: str = PROXY) -> FlaskClient:
    """A browser whose requests reach the gateway from ``peer`` with ``X-Forwarded-For: forwarded``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = peer
    if forwarded is not None:
        client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded
    return client


def staff_sign_in(client: FlaskClient, username: str, password: str) -> int:
    token = csrf_token(client, "/staff/sign-in")
    return client.post(
        "/staff/sign-in", data={"username": username, "password": password, "csrf_token": token}
    ).status_code


def test_an_attacker_behind_the_shared_proxy_locks_out_only_itself(app: Flask) -> None:
    attacker = browser(app, "203.0.113.66")
    assert [staff_sign_in(attacker, "ada", WRONG) for _ in range(3)] == [401, 401, 401]
    assert staff_sign_in(attacker, "ada", PASSWORD) == 429  # its own window is used up, even with the right password
    honest = browser(app, "198.51.100.7")  # through the same proxy, from elsewhere
    assert staff_sign_in(honest, "ada", PASSWORD) == 302
    assert staff_sign_in(browser(app, "198.51.100.8"), "bob", PASSWORD) == 302


def test_one_address_failing_on_one_account_does_not_lock_out_its_other_accounts(app: Flask) -> None:
    office = browser(app, "198.51.100.20")  # a shared office network: one address for many people
    assert [staff_sign_in(office, "ada", WRONG) for _ in range(3)] == [401, 401, 401]
    assert staff_sign_in(office, "ada", PASSWORD) == 429
    assert staff_sign_in(office, "bob", PASSWORD) == 302


def test_a_forged_forwarded_for_is_not_believed_from_the_client_itself(app: Flask) -> None:
    codes = []
    for n in range(4):  # straight to the gateway, not through the proxy, each time claiming another address
        client = browser(app, forwarded=f"198.51.100.{n}", peer="203.0.113.80")
        codes.append(staff_sign_in(client, "ada", WRONG))
    assert codes == [401, 401, 401, 429]


def test_a_forged_address_before_the_proxys_own_is_not_believed(app: Flask) -> None:
    codes = []
    for n in range(4):  # through the proxy, which appends the real address after the forged one
        codes.append(staff_sign_in(browser(app, f"198.51.100.{n}, 203.0.113.81"), "ada", WRONG))
    assert codes == [401, 401, 401, 429]
    with app.extensions["gateway"].sessions() as session:
        rows = session.scalars(select(AuditEntry.entry).where(AuditEntry.kind == "staff.sign_in_refused"))
        assert {decode(row)["client"] for row in rows} == {"203.0.113.81"}  # the audit names the real client


def test_one_account_guessed_from_many_addresses_is_limited(app: Flask) -> None:
    codes = [staff_sign_in(browser(app, f"198.51.100.{n}"), "ada", WRONG) for n in range(6)]
    assert codes == [401] * 5 + [429]
    assert staff_sign_in(browser(app, "198.51.100.99"), "bob", PASSWORD) == 302


def test_many_accounts_guessed_from_one_address_are_limited_on_every_form(app: Flask) -> None:
    sprayer = browser(app, "203.0.113.90")
    codes = [staff_sign_in(sprayer, username, WRONG) for username in USERS for _ in range(2)][:9]
    assert codes == [401] * 8 + [429]
    token = csrf_token(sprayer, "/graduate/sign-in")
    graduate = sprayer.post(
        "/graduate/sign-in", data={"identity_number": LI_MING.identity_number, "password": WRONG, "csrf_token": token}
    )
    assert graduate.status_code == 429  # the address's count is shared by every sign-in form
    assert staff_sign_in(browser(app, "198.51.100.30"), "ada", PASSWORD) == 302


def test_successful_sign_ins_are_not_counted(app: Flask) -> None:
    client = browser(app, "198.51.100.40")
    assert [staff_sign_in(client, "ada", PASSWORD) for _ in range(6)] == [302] * 6


def test_identity_numbers_never_reach_the_rate_limit_storage(app: Flask) -> None:
    client = browser(app, "198.51.100.50")
    token = csrf_token(client, "/graduate/sign-in")
    data = {"identity_number": LI_MING.identity_number, "password": WRONG, "csrf_token": token}
    assert client.post("/graduate/sign-in", data=data).status_code == 401
    storage = limiter.storage
    keys = " ".join(storage.storage) if storage is not None and hasattr(storage, "storage") else ""  # memory://
    assert "198.51.100.50" in keys and "identity_number:" in keys
    assert LI_MING.identity_number not in keys and LI_MING.identity_number.lower() not in keys
