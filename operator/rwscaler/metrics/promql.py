"""PromQL templating: the `${placeholder}` syntax of presets and of `spec.metrics.queries`.

A template is PromQL with placeholders such as `${namespace}` or `${replica_pods}`. Every
placeholder expands to a regular expression (RE2, escaped, inside a PromQL double-quoted string),
so it is always used with a `=~` matcher:

    pg_replica_lag_seconds{namespace=~"${namespace}", pod=~"${replica_pods}"}

The same template serves one workload (a custom query: each placeholder is that workload's
value, or the alternation of its pods) and a whole group of workloads (a preset's grouped query:
each placeholder is the alternation of the values of every workload in the group). That is what
lets a preset ask each signal once for all workloads. `${window}` is the one placeholder that is
not a regex: a PromQL duration for range selectors (`rate(x[${window}])`).

Called by `group.py` (grouped preset queries) and `prometheus.py` (custom queries).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rwscaler.core.placeholders import PLACEHOLDERS, REGEX_PLACEHOLDERS, WINDOW_PLACEHOLDER
from rwscaler.metrics.source import WorkloadQuery

_PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# RE2's metacharacters; everything else (letters, digits, '-', '_') stands for itself.
_RE2_META = frozenset("\\.+*?()|[]{}^$")
# An RE2 expression that matches no string at all. An empty alternation must not become ""
# because `pod=~""` matches every series that has NO pod label: the opposite of "no pods".
NEVER_MATCHES = r"[^\s\S]"


class TemplateError(ValueError):
    """A template that cannot be rendered (unknown placeholder, or a value the workload lacks)."""


# str.translate does the escaping in C: it runs for every pod name of every workload per interval.
_RE2_ESCAPES = str.maketrans({c: "\\" + c for c in _RE2_META})


# A grouped read escapes the same pod names many times over (98,000 calls a read at 1,000
# workloads, make bench-observe's objects): remembered, 3,000 of them cost 0.35 ms instead of
# 4.4 (about a tenth of a read's CPU). Bounded: 16,384 names, a few MB.
@functools.lru_cache(maxsize=16384)
def re2_escape(value: str) -> str:
    return value.translate(_RE2_ESCAPES)


def promql_string_escape(value: str) -> str:
    """Escape for the inside of a PromQL double-quoted string literal."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def alternation(values: Iterable[str]) -> str:
    """An anchored-by-Prometheus regex matching exactly these values, ready for a "..." literal."""
    unique = sorted(set(values))
    if not unique:
        return promql_string_escape(NEVER_MATCHES)
    return promql_string_escape("|".join(re2_escape(v) for v in unique))


def placeholders_in(template: str) -> set[str]:
    return set(_PLACEHOLDER_RE.findall(template))


def check_template(template: str) -> None:
    """Raise TemplateError when the template names a placeholder that does not exist."""
    unknown = sorted(placeholders_in(template) - set(PLACEHOLDERS))
    if unknown:
        known = ", ".join("${" + p + "}" for p in PLACEHOLDERS)
        raise TemplateError(
            f"unknown placeholder {', '.join('${' + u + '}' for u in unknown)}; known: {known}"
        )


_SET_RE = re.compile(r"(.+)-[0-9]+")


def set_of(pod: str) -> str:
    """The pod's name less its ordinal, as the presets' label_replace cuts it ("" when it has none):
    a StatefulSet's name, a CloudNativePG Cluster's."""
    match = _SET_RE.fullmatch(pod)
    return match.group(1) if match else ""


def sets_of(pods: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(set_of(pod) for pod in pods))


@dataclass(frozen=True, slots=True)
class Databases:
    """The pooler's write and read databases of a workload (empty when it has no PgBouncer)."""

    write: str | None
    read: str | None


def pooler_databases(query: WorkloadQuery) -> Databases:
    pgb = query.spec.pooler.pgbouncer
    if pgb is None:
        return Databases(None, None)
    return Databases(pgb.writeDatabase or pgb.database, pgb.readDatabase or f"{pgb.database}_ro")


def workload_values(query: WorkloadQuery) -> dict[str, tuple[str, ...]]:
    """Each regex placeholder's values for one workload (before escaping)."""
    dbs = pooler_databases(query)
    return {
        "namespace": (query.namespace,),
        "name": (query.name,),
        "primary_statefulset": sets_of(query.primary_pods),
        "replica_statefulset": sets_of(query.replica_pods),
        "primary_pods": tuple(query.primary_pods),
        "replica_pods": tuple(query.replica_pods),
        "read_pods": query.read_pods,
        "pods": query.pods,
        "read_database": (dbs.read,) if dbs.read is not None else (),
        "write_database": (dbs.write,) if dbs.write is not None else (),
    }


# Placeholders that exist only when the workload has a PgBouncer pooler: a template using them
# for a workload without one cannot mean anything, so it is an error rather than "no series".
_POOLER_PLACEHOLDERS = frozenset({"read_database", "write_database"})


def expansions(queries: Sequence[WorkloadQuery], window: str) -> dict[str, str]:
    """What each placeholder expands to for this group of workloads (computed once per group)."""
    merged: dict[str, list[str]] = {name: [] for name in REGEX_PLACEHOLDERS}
    for q in queries:
        for name, values in workload_values(q).items():
            merged[name].extend(values)
    return {**{name: alternation(values) for name, values in merged.items()}, WINDOW_PLACEHOLDER: window}


def render(
    template: str, queries: Sequence[WorkloadQuery], window: str, expanded: Mapping[str, str] | None = None
) -> str:
    """The template with every placeholder expanded to the union over `queries`.

    `expanded` (from `expansions(queries, window)`) saves recomputing the alternations when
    several templates are rendered for the same group.
    """
    check_template(template)
    used = placeholders_in(template)
    if used & _POOLER_PLACEHOLDERS:
        for q in queries:
            if q.spec.pooler.pgbouncer is None:
                raise TemplateError(
                    f"{q.key}: ${{read_database}} and ${{write_database}} need spec.pooler.pgbouncer"
                )
    values = expanded if expanded is not None else expansions(queries, window)
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)


def format_window(seconds: float) -> str:
    """A PromQL duration for `${window}` (whole seconds; Prometheus rejects fractions like 1.5s)."""
    return f"{max(1, round(seconds))}s"


_BARE_SELECTOR_RE = re.compile(r"^\s*[A-Za-z_:][A-Za-z0-9_:]*\s*(\{[^{}]*\})?\s*$")


def is_bare_selector(expr: str) -> bool:
    """True for `metric{...}` alone: the only expression whose samples `timestamp()` can date."""
    return bool(_BARE_SELECTOR_RE.match(expr))


PART_LABEL = "rwscaler_part"
# A value series carrying this label with value "average" is an average, not a percentile.
AGGREGATION_LABEL = "rwscaler_aggregation"


def with_freshness(value_expr: str, fresh_expr: str) -> str:
    """One query answering both the value and the newest sample's timestamp of each series.

    The two halves are told apart by the `rwscaler_part` label ("value" or "ts"), so the
    staleness check costs no extra round trip and no extra query per interval.
    """
    return (
        f'label_replace({value_expr}, "{PART_LABEL}", "value", "", "") or '
        f'label_replace({fresh_expr}, "{PART_LABEL}", "ts", "", "")'
    )
