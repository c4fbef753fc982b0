"""The documentation keeps step with the code it documents."""

from __future__ import annotations

import re

import click
from click import Group

from gateway.cli import main
from gateway.errors import all_fault_classes
from gateway.settings import PROJECT_ROOT


def test_every_fault_code_is_documented_with_its_status() -> None:
    text = (PROJECT_ROOT / "docs" / "faults.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| (\w+ \| \d+) \|", text, re.MULTILINE))
    expected = {c.code: f"{c.faultcode} | {c.http_status}" for c in all_fault_classes()}
    assert rows == expected


def test_every_command_is_in_the_readme() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    missing = []
    context = click.Context(main)
    for name in main.list_commands(context):
        command = main.get_command(context, name)
        if isinstance(command, Group):
            missing += [f"gateway {name} {sub}" for sub in command.commands if f"gateway {name} {sub}" not in readme]
        elif f"gateway {name}" not in readme:
            missing.append(f"gateway {name}")
    assert missing == []


def test_readme_has_the_two_setup_commands() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run" in readme and "make test" in readme
