"""``gateway users add|list|disable|enable``: staff accounts (auditors and administrators) for the web pages."""

from __future__ import annotations

import json
import sys

import click

from gateway.cli.common import clock, load_settings, store
from gateway.staff.models import Role
from gateway.staff.services import add_user, set_enabled, users


@click.group()
def users_group() -> None:
    """Staff accounts: auditors (the auditor UI at /audit/) and administrators."""


@users_group.command("add")
@click.argument("username")
@click.option(
    "--role", type=click.Choice([r.value for r in Role]), required=True, help="auditor or administrator (apart)."
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of prompting.")
def add(username: str, role: str, password_stdin: bool) -> None:
    """Add a staff account USERNAME with a ROLE; asks for the password twice (at least 10 characters)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    with store(load_settings()) as session:
        user = add_user(session, username.strip().lower(), role, password, clock.now())
        click.echo(f"added {user.role} {user.username}")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_users(as_json: bool) -> None:
    """List the staff accounts (never their password hashes)."""
    with store(load_settings()) as session:
        rows = [
            {
                "username": u.username,
                "role": u.role,
                "enabled": u.enabled,
                "created_at": u.created_at.isoformat(),
                "last_sign_in_at": u.last_sign_in_at.isoformat() if u.last_sign_in_at else None,
            }
            for u in users(session)
        ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        state = "enabled" if row["enabled"] else "disabled"
        click.echo(f"{row['username']:<24} {row['role']:<14} {state:<9} last sign-in {row['last_sign_in_at'] or '-'}")


@users_group.command("disable")
@click.argument("username")
def disable(username: str) -> None:
    """Disable an account: it can no longer sign in, and its open sessions end at their next request."""
    with store(load_settings()) as session:
        set_enabled(session, username, False, clock.now())
    click.echo(f"disabled {username}")


@users_group.command("enable")
@click.argument("username")
def enable(username: str) -> None:
    """Enable a disabled account again."""
    with store(load_settings()) as session:
        set_enabled(session, username, True, clock.now())
    click.echo(f"enabled {username}")
