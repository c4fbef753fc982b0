"""The ``gateway`` command line (click). One module per command group."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

import click

from gateway import __version__


@dataclass(frozen=True)
class Entry:
    """Where a command lives, and the first paragraph of its help (for `gateway --help`, without importing it)."""

    module: str
    attribute: str
    summary: str


# A command's module is imported only when that command runs (or shows its own --help): each pulls in
# what it needs (SQLAlchemy, zeep, Flask, gunicorn...), and `gateway --help` needs none of it.
# tests/test_cli_startup.py keeps each summary equal to the command's own help.
COMMANDS = {
    "access": Entry(
        "gateway.cli.access",
        "access",
        "Who may send which service to whom: the matrix (schemas/access-rights.csv) and overrides.",
    ),
    "archives": Entry("gateway.cli.archives", "archives", "Follow personnel archive transfers."),
    "audit": Entry("gateway.cli.audit", "audit", "The tamper-evident audit log (Merkle tree, signed checkpoints)."),
    "backup": Entry(
        "gateway.cli.backup",
        "backup",
        "Copy the SQLite database to DESTINATION while the gateway runs (SQLite's online backup).",
    ),
    "deliveries": Entry(
        "gateway.cli.deliveries",
        "deliveries",
        "Inspect and retry deliveries (accepted, queued, in_delivery, delivered, waiting_for_retry, failed).",
    ),
    "demo": Entry(
        "gateway.cli.demo",
        "demo",
        "Start a gateway (embedded default) with simulated agency systems and play a graduation season.",
    ),
    "grants": Entry("gateway.cli.grants", "grants", "Graduates' authorisations (grants) and their uses."),
    "init": Entry(
        "gateway.cli.init_cmd",
        "init",
        "Create (or reuse) the database schema, development PKI and secrets. Safe to run again.",
    ),
    "keys": Entry("gateway.cli.keys", "keys", "Development key material (the development CA under keys/)."),
    "participants": Entry(
        "gateway.cli.participants",
        "participants",
        "Register and inspect participants (the organisations that exchange messages).",
    ),
    "payloads": Entry(
        "gateway.cli.payloads",
        "payloads",
        "Stored envelopes: encryption at rest (AES-256-GCM), key rotation and the retention purge.",
    ),
    "send": Entry(
        "gateway.cli.send",
        "send",
        "Sign FILE (a business document, e.g. from examples/) as a participant and send it.",
    ),
    "serve": Entry("gateway.cli.serve", "serve", "Serve the gateway (SOAP intake, WSDL, schemas, health checks)."),
    "users": Entry(
        "gateway.cli.users",
        "users_group",
        "Staff accounts: auditors (the auditor UI at /audit/) and administrators.",
    ),
    "worker": Entry(
        "gateway.cli.worker",
        "worker",
        "Deliver accepted messages: consume the broker's delivery queue and sweep the outbox.",
    ),
}


class GatewayCommands(click.Group):
    """The command group: commands imported when used; a failure no command foresaw ends in one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command: click.Command = getattr(importlib.import_module(entry.module), entry.attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        # click's own shortening, on a stand-in that carries only the summary
        rows = [(name, click.Command(name, help=COMMANDS[name].summary).get_short_help_str(limit)) for name in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
