"""Duration strings of the resource ("50ms", "5s", "2m", "1h30m") to seconds and back.

The CRD validates the same syntax with a pattern, and CEL's `duration()` checks positivity at
admission, so a value that reaches the core has already been accepted by the API server.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_FULL = re.compile(DURATION_PATTERN)


def parse_duration(text: str) -> float:
    """Seconds in a duration string; raises ValueError naming the bad value."""
    if not _FULL.match(text):
        raise ValueError(
            f"invalid duration {text!r}: expected a number with a unit ms, s, m or h, e.g. 50ms, 5s, 2m"
        )
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))


def format_seconds(seconds: float) -> str:
    """A short human form of a duration in seconds, for messages ("42ms", "3.5s", "2m5s")."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m" if minutes else f"{hours}h"


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
