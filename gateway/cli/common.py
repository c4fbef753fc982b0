"""What the commands share: settings, the clock, an open store, and turning errors into exits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
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


def _initialised_engine(settings: Settings) -> Engine:
    """An engine on the store at its newest revision, or a one-line exit saying what to do."""
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise click.ClickException(
            f"no database at {url.removeprefix('sqlite:///')}: run `gateway init` (or check GATEWAY_DATA_DIR)"
        )
    try:
        engine = connect(url)
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        raise click.ClickException(database_unavailable(url, exc)) from None
    if revision != head_revision(engine):
        engine.dispose()
        raise click.ClickException("the database is not initialised or is out of date: run `gateway init`")
    return engine


def database_unavailable(url: str, exc: Exception) -> str:
    """One line for a database that cannot be opened (the URL without its password)."""
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "GATEWAY_DATABASE_URL is not a database URL (e.g. postgresql://user@host/db or sqlite:////path/db)"
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return f"cannot open the database {shown}: {reason}; check GATEWAY_DATABASE_URL and that the server runs"


@contextmanager
def store(settings: Settings) -> Iterator[Session]:
    """A transaction on an initialised store; refusals become clear command-line errors."""
    engine = _initialised_engine(settings)
    try:
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
    engine = _initialised_engine(settings)
    try:
        yield session_factory(engine)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
