"""What the commands share: settings, the clock, an open store, and turning errors into exits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.orm import Session, sessionmaker

from gateway.clock import SystemClock
from gateway.errors import ConfigurationError, NotFound, ValidationError
from gateway.settings import Settings
from gateway.store.db import connect, current_revision, head_revision, session_factory

clock = SystemClock()


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def store(settings: Settings) -> Iterator[Session]:
    """A transaction on an initialised store; refusals become clear command-line errors."""
    engine = connect(settings.database_url)
    try:
        if current_revision(engine) != head_revision(engine):
            raise click.ClickException("the database is not initialised or is out of date: run `gateway init`")
        with session_factory(engine)() as session, session.begin():
            yield session
    except ValidationError as exc:
        raise click.ClickException(f"refused: {exc.field}: {exc.rule}") from None
    except (NotFound, ConfigurationError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()


@contextmanager
def store_sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on an initialised store, for commands that commit in several transactions (batches)."""
    engine = connect(settings.database_url)
    try:
        if current_revision(engine) != head_revision(engine):
            raise click.ClickException("the database is not initialised or is out of date: run `gateway init`")
        yield session_factory(engine)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
