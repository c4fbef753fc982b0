"""The pool checks a PostgreSQL connection before lending it only when it has been unused for a
while (``gateway.store.db.PING_AFTER_IDLE_SECONDS``), and replaces one found broken then."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from gateway.store import db
from gateway.store.db import connect


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    created = connect(postgres_url)
    yield created
    created.dispose()


def counting_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    pings: list[object] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        pid: int = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        return pid


def test_a_connection_used_a_moment_ago_is_lent_again_unchecked(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = counting_pings(engine, monkeypatch)
    first = backend_pid(engine)
    assert [backend_pid(engine) for _ in range(5)] == [first] * 5  # the one returned last is lent first
    assert pings == []  # with pool_pre_ping: one a checkout
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every connection has lain unused long enough
    assert backend_pid(engine) == first
    assert len(pings) == 1


def test_a_connection_cut_while_it_lay_unused_is_replaced_before_it_is_lent(
    engine: Engine, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = counting_pings(engine, monkeypatch)
    cut = backend_pid(engine)
    other = connect(postgres_url)
    try:
        with other.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": cut}).scalar_one()
    finally:
        other.dispose()
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert backend_pid(engine) != cut  # no error: the ping found it broken and the pool opened another
    assert len(pings) == 1
