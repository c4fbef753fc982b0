"""Every command turns bad input into a line or two that name the problem: never a traceback.

Each case runs ``gateway`` as a real process (as an operator or an agency developer runs it), on a
copy of the template home with a gateway served on it, and checks the exit status, that the output
has no "Traceback" and that it names the problem.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from tests.conftest import EDUCATION_DEPARTMENT, EXAMPLES, PRIVATE_EMPLOYER, UNIVERSITY

pytestmark = pytest.mark.slow

DOCUMENT = str(EXAMPLES / "destination-registration.xml")
SEND = ("send", DOCUMENT, "--as", UNIVERSITY)

# (what is wrong, arguments, environment overrides, what the output must say). "{url}" is the served
# gateway's base URL, "{tmp}" a folder of the test's own with the files written below.
CASES: list[tuple[str, tuple[str, ...], dict[str, str], str]] = [
    (
        "send: XML that is no gateway document",
        ("send", "{tmp}/other.xml", "--as", UNIVERSITY, "--to", EDUCATION_DEPARTMENT, "--url", "{url}"),
        {},
        "is no document of the gateway's WSDL",
    ),
    (
        "send: an already signed envelope",
        (
            "send",
            str(EXAMPLES / "signed" / "destination-registration.signed.xml"),
            "--as",
            UNIVERSITY,
            "--to",
            EDUCATION_DEPARTMENT,
            "--url",
            "{url}",
        ),
        {},
        "this is a SOAP envelope; give the business document it carries",
    ),
    (
        "send: a document that does not fit the service named",
        (*SEND, "--to", EDUCATION_DEPARTMENT, "--service", "ArchiveReceipt", "--url", "{url}"),
        {},
        "does not fit the service ArchiveReceipt",
    ),
    (
        "send: a service the WSDL does not have",
        (*SEND, "--to", EDUCATION_DEPARTMENT, "--service", "NoSuchService", "--url", "{url}"),
        {},
        "the gateway's WSDL has no service 'NoSuchService'",
    ),
    (
        "send: no gateway running there",
        (*SEND, "--to", EDUCATION_DEPARTMENT, "--url", "http://127.0.0.1:9"),
        {},
        "no gateway answers at http://127.0.0.1:9",
    ),
    ("send: --url that is no URL", (*SEND, "--to", EDUCATION_DEPARTMENT, "--url", "notaurl"), {}, "'notaurl' is not"),
    (
        "send: a URL that is not the gateway's",
        (*SEND, "--to", EDUCATION_DEPARTMENT, "--url", "{url}/nothing-here"),
        {},
        "answered HTTP 404 for the WSDL",
    ),
    ("send: a malformed participant id", (*SEND, "--to", "12345"), {}, "'12345' is neither a participant id"),
    ("send: an unknown role", (*SEND, "--to", "agency@110105"), {}, "'agency' is not a role"),
    ("send: a malformed region", (*SEND, "--to", "talent_service_agency@1101"), {}, "'1101' is not a region code"),
    ("send: no --to", SEND, {}, "Missing option '--to'"),
    ("send: a message id that is no UUID", (*SEND, "--to", EDUCATION_DEPARTMENT, "--message-id", "x1"), {}, "UUID"),
    ("send: a sender without a key", ("send", DOCUMENT, "--as", "NOPE", "--to", EDUCATION_DEPARTMENT), {}, "no key"),
    (
        "send: XML that is not well-formed, its position said once",
        ("send", "{tmp}/broken.xml", "--as", UNIVERSITY, "--to", EDUCATION_DEPARTMENT, "--url", "{url}"),
        {},
        "Opening and ending tag mismatch: b line 1 and a (line 1, column 10)",
    ),
    (
        "send: refused by the access rules, in words",
        (*SEND, "--to", PRIVATE_EMPLOYER, "--url", "{url}"),
        {},
        "no rule lets a university send DestinationRegistration to an employer",
    ),
    ("keys issue: a participant that has a key", ("keys", "issue", UNIVERSITY), {}, "Run again with --replace"),
    ("keys issue: an unknown participant", ("keys", "issue", "91110000600037341L"), {}, "no participant"),
    (
        "a database server that is not running",
        ("participants", "list"),
        {"GATEWAY_DATABASE_URL": "postgresql://someone:secret@127.0.0.1:9/gateway"},
        "cannot open the database postgresql://someone:***@127.0.0.1:9/gateway",
    ),
    (
        "a database URL that is no URL",
        ("participants", "list"),
        {"GATEWAY_DATABASE_URL": "nonsense"},
        "GATEWAY_DATABASE_URL is not a database URL",
    ),
    ("no database yet", ("participants", "list"), {"GATEWAY_DATA_DIR": "{tmp}/empty"}, "run `gateway init`"),
    ("a data folder that is a file", ("init",), {"GATEWAY_DATA_DIR": "{tmp}/other.xml"}, "file exists"),
    (
        "a broker that is not running",
        ("worker",),
        {"GATEWAY_BROKER_URL": "redis://127.0.0.1:9/0"},
        "cannot reach the broker at redis://127.0.0.1:9/0",
    ),
    ("a setting that is not a number", ("participants", "list"), {"GATEWAY_PORT": "eighty"}, "GATEWAY_PORT"),
    ("an unknown command", ("sned",), {}, "No such command 'sned'"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-input")
    (folder / "other.xml").write_text('<Invoice xmlns="urn:example:billing"><Total>3</Total></Invoice>\n')
    (folder / "broken.xml").write_text("<a><b></a>\n")
    return folder


@pytest.mark.parametrize(("problem", "args", "env", "expected"), CASES, ids=[case[0] for case in CASES])
def test_bad_input_ends_in_a_line_that_names_the_problem(
    problem: str,
    args: tuple[str, ...],
    env: dict[str, str],
    expected: str,
    served_home: Path,
    gateway_url: str,
    files: Path,
) -> None:
    def fill(text: str) -> str:
        return text.replace("{url}", gateway_url).replace("{tmp}", str(files))

    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
        "GATEWAY_DATA_DIR": str(served_home / "data"),
        "GATEWAY_KEYS_DIR": str(served_home / "keys"),
        **{name: fill(value) for name, value in env.items()},
    }
    result = subprocess.run(
        [sys.executable, "-m", "gateway", *map(fill, args)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    assert fill(expected) in output, output
    assert len(output.strip().splitlines()) <= 4, output  # click's usage lines, then the one that matters


def test_every_option_says_what_it_is_for() -> None:
    import click

    silent = []

    def walk(command: click.Command, path: str) -> None:
        if isinstance(command, click.Group):
            context = click.Context(command)
            for name in command.list_commands(context):
                sub = command.get_command(context, name)
                assert sub is not None
                walk(sub, f"{path} {name}")
            return
        silent.extend(
            f"{path} {param.opts[0]}" for param in command.params if isinstance(param, click.Option) and not param.help
        )

    walk(main, "gateway")
    assert silent == []


def test_send_marks_its_required_options() -> None:
    from click.testing import CliRunner

    shown = CliRunner().invoke(main, ["send", "--help"]).output
    assert shown.count("[required]") == 2  # --as and --to


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_prints_no_make_syntax() -> None:
    root = Path(__file__).parent.parent
    shown = subprocess.run(["make", "-s", "help"], cwd=root, capture_output=True, text=True, check=True).stdout
    assert "make run" in shown
    assert "$$" not in shown and "${" not in shown
