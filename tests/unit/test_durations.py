"""Duration strings of the resource: parsing (the same syntax the CRD's pattern admits) and the
short human form used in messages."""

from __future__ import annotations

import re

import pytest

from rwscaler.core.durations import DURATION_PATTERN, format_seconds, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("50ms", 0.05),
        ("5s", 5.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        ("0.25h", 900.0),
        ("2s500ms", 2.5),
        ("0s", 0.0),
    ],
)
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["5 seconds", "5", "s", "", "-5s", "5S", "5sec", "1d", " 5s", "5s ", ".5s", "5.s", "1h 30m"]
)
def test_parse_rejects_with_a_readable_message(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration .*expected a number with a unit ms, s, m or h"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["5 seconds", "-5s", "1d", "5s "])
def test_pattern_agrees_with_parser_on_rejections(text: str) -> None:
    """The CRD validates with DURATION_PATTERN; anything it admits the parser must read."""
    assert re.match(DURATION_PATTERN, text) is None


@pytest.mark.parametrize("text", ["50ms", "1h30m", "1.5s", "2s500ms"])
def test_pattern_admits_what_the_parser_reads(text: str) -> None:
    assert re.match(DURATION_PATTERN, text) is not None
    parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.042, "42ms"),
        (0.5, "500ms"),
        (1.0, "1s"),
        (3.5, "3.5s"),
        (59.0, "59s"),
        (60.0, "1m"),
        (125.0, "2m5s"),
        (3600.0, "1h"),
        (5400.0, "1h30m"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


@pytest.mark.parametrize("text", ["42ms", "3.5s", "2m5s", "1h30m", "1h"])
def test_format_round_trips_through_parse(text: str) -> None:
    assert format_seconds(parse_duration(text)) == text
