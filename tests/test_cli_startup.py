"""The command line starts fast: a command's module (and SQLAlchemy, zeep, Flask...) is imported only
when that command runs, so ``gateway --help`` loads none of them."""

from __future__ import annotations

import resource
import subprocess
import sys

import click

from gateway.cli import COMMANDS, main

HEAVY = ("sqlalchemy", "alembic", "zeep", "flask", "signxml", "gunicorn", "dramatiq", "gateway.cli.")


def test_each_summary_is_the_commands_own_help() -> None:
    context = click.Context(main)
    for name, entry in COMMANDS.items():
        command = main.get_command(context, name)
        assert command is not None and command.name == name
        assert (command.help or "").split("\n\n")[0].strip() == entry.summary, name
    assert main.list_commands(context) == sorted(COMMANDS)


def test_help_imports_no_command_and_no_heavy_library() -> None:
    probe = (
        "import sys\n"
        "from gateway.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert "Commands:" in result.stdout and "participants" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_help_takes_a_fraction_of_a_cpu_second() -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "gateway", "--help"], capture_output=True, timeout=60, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 0.5, f"gateway --help took {cpu:.2f} CPU seconds"  # about 0.05 s; 1.4 s before lazy imports
