"""The ``gateway`` command line (click). One module per command group."""

from __future__ import annotations

import logging
from typing import Any

import click

from gateway import __version__
from gateway.cli import (
    access,
    archives,
    audit,
    backup,
    deliveries,
    demo,
    grants,
    init_cmd,
    keys,
    participants,
    payloads,
    send,
    serve,
    users,
    worker,
)


class GatewayCommands(click.Group):
    """The command group; a failure no command foresaw still ends in one line, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("verbose"):
                raise  # -v: the whole story, for a bug report
            raise click.ClickException(unforeseen(exc)) from None


def unforeseen(exc: Exception) -> str:
    """One line for an error no command turned into its own message."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror.lower()}{where} (check the path, its permissions and GATEWAY_DATA_DIR/GATEWAY_KEYS_DIR)"
    if type(exc).__module__.startswith("sqlalchemy"):
        from gateway.cli.common import database_unavailable
        from gateway.settings import Settings

        try:
            url = Settings.from_env().database_url
        except Exception:
            url = "?"
        return database_unavailable(url, exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first} (unexpected; `gateway -v ...` shows where, for a bug report)"


@click.group(cls=GatewayCommands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gateway")
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
def main(verbose: bool) -> None:
    """The Graduate Exchange Gateway.

    Settings come from GATEWAY_* environment variables (see docs/operations.md); with none set,
    the embedded default runs from ./data and ./keys.
    """
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # signxml logs the canonical form of what it signs and verifies at debug level: SOAP bodies with
    # identity numbers in them. Payloads are never logged, so it stays at INFO even with --verbose.
    logging.getLogger("signxml").setLevel(logging.INFO)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


main.add_command(init_cmd.init)
main.add_command(access.access)
main.add_command(audit.audit)
main.add_command(serve.serve)
main.add_command(participants.participants)
main.add_command(keys.keys)
main.add_command(send.send)
main.add_command(deliveries.deliveries)
main.add_command(worker.worker)
main.add_command(archives.archives)
main.add_command(users.users_group, name="users")
main.add_command(payloads.payloads)
main.add_command(demo.demo)
main.add_command(grants.grants)
main.add_command(backup.backup)
