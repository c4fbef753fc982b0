"""``gateway demo``: a graduation season played by simulated agency systems against a real gateway."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType

import click

from gateway.demo.graduates import minimum_graduates
from gateway.demo.process import DemoError
from gateway.demo.runner import DemoOptions, run_demo
from gateway.demo.summary import Summary, render

COLUMNS = 80
BAR_WIDTH = 24


class ProgressBar:
    """A click progress bar on stderr, labelled with the step being played, on one line of 80 columns."""

    def __init__(self, total: int) -> None:
        self._bar = click.progressbar(
            length=total, label="season", file=sys.stderr, show_pos=True, show_eta=False, width=BAR_WIDTH
        )
        # click draws "LABEL  [BAR]  POS/TOTAL": the label gets what is left of the line.
        self._room = COLUMNS - 1 - len(f"  [{'#' * BAR_WIDTH}]  {total}/{total}")
        self._bar.__enter__()

    def describe(self, text: str) -> None:
        self._bar.label = fit(text, self._room)
        self._bar.render_progress()

    def advance(self, units: int) -> None:
        self._bar.update(units)

    def close(self) -> None:
        self._bar.__exit__(None, None, None)


@click.command()
@click.option(
    "--graduates",
    type=click.IntRange(minimum_graduates(), 20000),
    default=200,
    show_default=True,
    help="How many graduates the season has (the first ones tell its stories).",
)
@click.option("--seed", type=int, default=2026, show_default=True, help="The same seed gives the same graduates.")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="A new or empty folder for the gateway's data and keys, kept afterwards (default: a temporary one).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="0: any free port.")
@click.option(
    "--keep-running/--exit",
    "keep_running",
    default=None,
    help="Keep the gateway and the agencies serving until Ctrl-C, or stop when the season is over "
    "(default: keep serving when run in a terminal, stop otherwise, saying so).",
)
@click.option(
    "--summary-json", type=click.Path(dir_okay=False, path_type=Path), help="Also write the summary as JSON here."
)
def demo(
    graduates: int, seed: int, home: Path | None, port: int, keep_running: bool | None, summary_json: Path | None
) -> None:
    """Start a gateway (embedded default) with simulated agency systems and play a graduation season.

    The summary comes from the gateway's database; the exit code is 1 when the season did not go
    as planned (a step failed, a delivery is missing, an unplanned refusal, the audit log does not verify).
    """
    options = DemoOptions(graduates=graduates, seed=seed, home=home, port=port, keep_running=keep_running)

    def report(summary: Summary) -> None:
        click.echo()
        click.echo(render(summary))
        if summary_json is not None:
            summary_json.write_text(json.dumps(summary.as_json(), ensure_ascii=False, indent=2), encoding="utf-8")

    # SIGTERM ends the demo like Ctrl-C does: the gateway process and the endpoints are stopped too.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        summary = run_demo(options, sys.stdout, ProgressBar, report)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    if not summary.ok:
        raise SystemExit(1)


def fit(text: str, room: int) -> str:
    """``text`` cut to ``room`` columns (with an ellipsis when cut), padded so a shorter one clears a longer."""
    text = " ".join(text.split())
    if len(text) > room:
        text = text[: max(room - 1, 0)] + "…"
    return text.ljust(room)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
