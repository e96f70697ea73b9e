"""`rwscaler report`'s command line (docs/report.md): durations and the checks made before any query."""

from __future__ import annotations

import argparse

import pytest

from rwscaler.cli import main
from rwscaler.command_report import period


@pytest.mark.parametrize(("text", "seconds"), [("1w", 604800), ("7d", 604800), ("1h", 3600), ("90s", 90)])
def test_period_takes_prometheus_units_and_days_and_weeks(text: str, seconds: float) -> None:
    assert period(text) == seconds


def test_a_bad_period_names_the_value_and_the_units() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"invalid duration '2x'.*1w, 7d"):
        period("2x")


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (
            ["--period", "1m", "--step", "40s"],
            "--step must be at least 1s and at most half of --period (60s), got 40s",
        ),
        (["--period", "60s"], "--step must be at least 1s and at most half of --period (60s), got 0.357143s"),
        (["--weeks", "1"], "--weeks must be between 2 and 52"),
    ],
)
def test_a_step_that_does_not_fit_the_period_is_refused_before_any_query(
    flags: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The URL is nobody's: the command must stop before it asks anything.
    code = main(["report", "w", "--prometheus-url", "http://127.0.0.1:9", *flags])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"rwscaler report: {says}"
