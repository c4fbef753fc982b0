"""``gateway demo`` refuses what it cannot do before starting anything."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import main
from gateway.demo.graduates import minimum_graduates
from gateway.demo.steps import STEPS


def test_a_home_in_use_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(main, ["demo", "--home", str(tmp_path), "--port", "0"])
    assert result.exit_code == 1
    assert "is not empty: the demo plays its season in a new home" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_port_in_use_is_refused(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["demo", "--home", str(tmp_path / "home"), "--port", str(port)])
    assert result.exit_code == 1
    assert f"port {port} is in use" in result.output


def test_too_few_graduates_for_the_stories_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["demo", "--graduates", str(minimum_graduates() - 1)])
    assert result.exit_code == 2
    assert "--graduates" in result.output


def test_the_season_plays_the_grants_after_the_archives_and_offers_in_the_portal_after_the_accounts() -> None:
    names = [s.name for s in STEPS]
    assert names == [
        "offers", "revoked-certificate", "registrations", "accounts", "portal-offers",
        "archive-transfers", "archive-receipts", "grant", "verify-with-token", "revoke-grant",
    ]  # fmt: skip


def test_the_progress_stays_on_one_line_of_80_columns() -> None:
    from gateway.cli.demo import COLUMNS, ProgressBar, fit

    for text in ("season", "x" * 200, "archives are requested and dispatched (机要 for confidential documents)"):
        assert len(fit(text, 40)) == 40
    assert fit("a  b", 10) == "a b".ljust(10) and fit("y" * 20, 10) == "y" * 9 + "…"
    bar = ProgressBar(1234)
    try:
        bar.describe("waiting for the last deliveries and the audit log, and a very long description besides")
        line = bar._bar.format_progress_line()
    finally:
        bar.close()
    assert len(line) <= COLUMNS - 1, line
