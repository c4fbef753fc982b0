"""``gateway backup``: a consistent copy of the SQLite database, taken while the gateway runs.

SQLite's online backup API copies the database page by page inside one read transaction: in WAL
mode (``gateway.store.db``) the gateway keeps accepting and delivering meanwhile, and the copy is
the database as it was at one moment, whole. PostgreSQL has its own tools (pg_dump, base backups
with WAL archiving); docs/operations.md, *Backups*, says how.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path

import click
from sqlalchemy.engine import make_url

from gateway.cli.common import load_settings


@click.command()
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace DESTINATION if it exists.")
def backup(destination: Path, force: bool) -> None:
    """Copy the SQLite database to DESTINATION while the gateway runs (SQLite's online backup).

    The keys are not in it: back up GATEWAY_KEYS_DIR (the payload key ring decrypts the stored
    envelopes) and the published checkpoints apart. PostgreSQL: pg_dump or base backups
    (docs/operations.md, Backups).
    """
    settings = load_settings()
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        raise click.ClickException(
            f"gateway backup copies SQLite databases; this gateway uses {url.get_backend_name()}: "
            "back it up with pg_dump or base backups (docs/operations.md, Backups)"
        )
    source = Path(url.database or "")
    if not source.is_file():
        raise click.ClickException(f"there is no database at {source}: run `gateway init`")
    destination = destination.resolve()
    if destination == source.resolve():
        raise click.ClickException("the backup must not replace the database itself")
    if destination.exists() and not force:
        raise click.ClickException(f"{destination} exists; give another name, or --force to replace it")
    if not destination.parent.is_dir():
        raise click.ClickException(f"there is no folder {destination.parent}")
    pages = _copy(source, destination)
    size = destination.stat().st_size
    click.echo(f"backed up {source} to {destination} ({pages} pages, {size:,} bytes; integrity check ok)")
    click.echo("The keys are not in it: back up the key folder (and the published checkpoints) apart.")


def _copy(source: Path, destination: Path) -> int:
    """Copy ``source`` into a temporary file beside ``destination``, check it, and rename it there."""
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    os.close(handle)
    try:
        reader = sqlite3.connect(source, timeout=30)
        writer = sqlite3.connect(temporary)
        try:
            # One step (pages=-1): a step-wise copy starts again whenever another connection writes,
            # which under steady traffic may never end; one read transaction never blocks a WAL writer.
            reader.backup(writer, pages=-1)
            writer.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            checked = writer.execute("PRAGMA integrity_check").fetchone()
            pages = int(writer.execute("PRAGMA page_count").fetchone()[0])
        finally:
            writer.close()
            reader.close()
        if checked is None or checked[0] != "ok":
            raise click.ClickException(f"the copy does not pass SQLite's integrity check: {checked}")
        os.chmod(temporary, 0o600)  # what it holds is as confidential as the database
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return pages
