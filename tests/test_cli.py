"""The ``gateway`` command line, run through click's runner with the test's own home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gateway.cli import main


@pytest.fixture
def run(home: Path):  # type: ignore[no-untyped-def]
    env = {"GATEWAY_DATA_DIR": str(home / "data"), "GATEWAY_KEYS_DIR": str(home / "keys")}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def test_init_is_idempotent_and_creates_keys(tmp_path: Path) -> None:
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_KEYS_DIR": str(tmp_path / "keys")}
    first = CliRunner().invoke(main, ["init"], env=env)
    assert first.exit_code == 0, first.output
    assert "created development CA" in first.output
    ca = (tmp_path / "keys" / "ca" / "ca.cert.pem").read_bytes()
    assert (tmp_path / "keys" / "gateway" / "key.pem").stat().st_mode & 0o077 == 0
    second = CliRunner().invoke(main, ["init"], env=env)
    assert second.exit_code == 0
    assert "created" not in second.output
    assert (tmp_path / "keys" / "ca" / "ca.cert.pem").read_bytes() == ca


def test_participants_add_list_show_disable(run) -> None:  # type: ignore[no-untyped-def]
    added = run(
        "participants",
        "add",
        "91110000600037341L",
        "--name",
        "示范股份有限公司",
        "--kind",
        "employer",
        "--region",
        "110105",
        "--unit-nature",
        "39",
        "--delivery",
        "push",
        "--endpoint",
        "https://hr.example.cn/soap",
    )
    assert added.exit_code == 0, added.output
    listed = json.loads(run("participants", "list", "--json").output)
    assert "91110000600037341L" in [p["id"] for p in listed]
    shown = json.loads(run("participants", "show", "91110000600037341L", "--json").output)
    assert shown["endpoint_url"] == "https://hr.example.cn/soap"
    assert shown["enabled"] is True
    assert run("participants", "disable", "91110000600037341L").exit_code == 0
    assert json.loads(run("participants", "show", "91110000600037341L", "--json").output)["enabled"] is False
    plain = run("participants", "list", "--kind", "employer").output
    assert "DISABLED" in plain


def test_bad_input_exits_non_zero_naming_field_and_rule(run) -> None:  # type: ignore[no-untyped-def]
    refused = run(
        "participants",
        "add",
        "91110000600037341X",
        "--name",
        "x",
        "--kind",
        "employer",
        "--region",
        "110105",
        "--unit-nature",
        "39",
    )
    assert refused.exit_code == 1
    assert "id: check character is 'X' but GB 32100 gives 'L'" in refused.output
    withdrawn = run(
        "participants",
        "add",
        "91110000600037341L",
        "--name",
        "x",
        "--kind",
        "employer",
        "--region",
        "110103",
        "--unit-nature",
        "39",
    )
    assert withdrawn.exit_code == 1
    assert "region: 110103" in withdrawn.output and "withdrawn" in withdrawn.output


def test_show_unknown_participant(run) -> None:  # type: ignore[no-untyped-def]
    result = run("participants", "show", "91110000600037341L")
    assert result.exit_code == 1
    assert "no participant 91110000600037341L" in result.output


def test_keys_issue_registers_a_second_certificate(run, home: Path) -> None:  # type: ignore[no-untyped-def]
    key = home / "keys" / "participants" / "12110108400000008J" / "key.pem"
    before = key.read_bytes()
    refused = run("keys", "issue", "12110108400000008J", "--algorithm", "ec")
    assert refused.exit_code == 1
    assert "already has a key" in refused.output and "--replace" in refused.output
    assert "stays registered and valid" in refused.output
    assert key.read_bytes() == before
    result = run("keys", "issue", "12110108400000008J", "--algorithm", "ec", "--replace")
    assert result.exit_code == 0, result.output
    assert "the old certificate" in result.output
    assert "gateway keys revoke 12110108400000008J --fingerprint" in result.output
    shown = json.loads(run("participants", "show", "12110108400000008J", "--json").output)
    assert len(shown["certificates"]) == 2
    assert (home / "keys" / "participants" / "12110108400000008J" / "key.pem").exists()


def test_commands_refuse_an_uninitialised_store(tmp_path: Path) -> None:
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_KEYS_DIR": str(tmp_path / "keys")}
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(main, ["participants", "list"], env=env)
    assert result.exit_code == 1
    assert "run `gateway init`" in result.output
