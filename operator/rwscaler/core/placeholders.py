"""The `${name}` placeholders of PromQL templates (presets and `spec.metrics.queries`): their names.

`rwscaler.metrics.promql` expands them; `rwscaler.core.field_types` checks at admission that a
query names only these and that it parses once they are filled in. docs/metrics.md documents
each one. Pure.
"""

from __future__ import annotations

# Each expands to an RE2 regular expression inside a PromQL string.
REGEX_PLACEHOLDERS = (
    "namespace",
    "name",
    "primary_statefulset",
    "replica_statefulset",
    "primary_pods",
    "replica_pods",
    "read_pods",
    "pods",
    "read_database",
    "write_database",
)
# The rate window: a PromQL duration, not a regex.
WINDOW_PLACEHOLDER = "window"
PLACEHOLDERS = (*REGEX_PLACEHOLDERS, WINDOW_PLACEHOLDER)

# Text that names only known placeholders (RE2 and Python alike, no look-ahead): every '$' run is
# followed by a character other than '{' or '$', or by a known `{name}`, or ends the text.
ONLY_KNOWN_PLACEHOLDERS = r"^(?:[^$]|\$+(?:[^{$]|\{(?:" + "|".join(PLACEHOLDERS) + r")\}))*\$*$"


def filled_in(template: str) -> str:
    """The template with each placeholder replaced by a value of its kind, for a parser."""
    text = template.replace("${" + WINDOW_PLACEHOLDER + "}", "1m")
    for name in REGEX_PLACEHOLDERS:
        text = text.replace("${" + name + "}", "x")
    return text
