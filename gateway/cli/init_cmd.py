"""``gateway init``."""

from __future__ import annotations

import click

from gateway.bootstrap import initialise
from gateway.cli.common import clock, load_settings
from gateway.errors import ConfigurationError


@click.command()
@click.option("--demo", is_flag=True, help="Also register the demonstration participants and issue their keys.")
def init(demo: bool) -> None:
    """Create (or reuse) the database schema, development PKI and secrets. Safe to run again."""
    settings = load_settings()
    try:
        report = initialise(settings, clock, demo=demo)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"database {settings.database_url.split('@')[-1]} at revision {report.database_revision}")
    for line in report.created:
        click.echo(f"  created {line}")
    if report.reused:
        click.echo(f"  reused {len(report.reused)} existing item(s)")
    for line in report.attention:
        click.echo(f"  attention: {line}", err=True)
