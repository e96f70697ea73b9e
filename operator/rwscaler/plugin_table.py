"""The table of `kubectl rwscaler status`: ReadWriteWorkload objects (plain dicts, as read from
the API) -> rows of short cells -> aligned text. Pure: no I/O, no clock.

Called by `rwscaler.command_plugin`. Every cell comes from what the operator's tick wrote in
status (`rwscaler.report.render_status`), read through the status model
(`rwscaler.core.status.parse_status`); nothing is recomputed. A value that is absent prints as
`-` and a signal the operator could not read prints as `unknown` (as status says it), never 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rwscaler.core.spec import is_paused
from rwscaler.core.status import StatusCondition, StatusPrimary, StatusReplicaCounts, parse_status
from rwscaler.core.vocabulary import ConditionType, EffectiveMode

MISSING = "-"
# Beyond this many characters the read pool cell shows a count instead of the names.
POOL_NAMES_WIDTH = 32
# The NOT OK cell names at most this many conditions, then says how many more there are.
NOT_OK_SHOWN = 4

# For each condition type, the status that is OK; any other status (or Unknown) is shown.
OK_STATUS: dict[str, str] = {
    ConditionType.READY.value: "True",
    ConditionType.METRICS_AVAILABLE.value: "True",
    ConditionType.READ_CAPACITY_EXHAUSTED.value: "False",
    ConditionType.WRITE_BOTTLENECK.value: "False",
    ConditionType.CAPACITY_LIMIT.value: "False",
    ConditionType.REPLICATION_LAG_HIGH.value: "False",
    ConditionType.SCALING_LIMITED.value: "False",
}

HEADERS = ("NAME", "CLASS", "RATIO", "REPLICAS", "PRIMARY", "READ POOL", "MAX LAG", "MODE", "NOT OK")
NAMESPACE_HEADER = "NAMESPACE"


@dataclass(frozen=True, slots=True)
class Row:
    namespace: str
    name: str
    workload_class: str
    ratio: str
    replicas: str
    primary: str
    read_pool: str
    max_lag: str
    mode: str
    not_ok: str

    def cells(self, with_namespace: bool) -> tuple[str, ...]:
        own = (
            self.name,
            self.workload_class,
            self.ratio,
            self.replicas,
            self.primary,
            self.read_pool,
            self.max_lag,
            self.mode,
            self.not_ok,
        )
        return (self.namespace, *own) if with_namespace else own


def _text(value: object) -> str:
    """A status value as a cell: absent or empty -> `-`; anything else as written."""
    if value is None or value == "":
        return MISSING
    return str(value)


def ratio_cell(value: str | None) -> str:
    """status.readWriteRatio ("10.0", "inf", "unknown") as read:write ("10.0:1")."""
    text = _text(value)
    if text in (MISSING, "unknown"):
        return text
    return f"{text}:1"


def replicas_cell(replicas: StatusReplicaCounts | None) -> str:
    """status.replicas as current/desired; a side that is absent is `-` (never 0)."""
    if replicas is None or not replicas.model_fields_set:
        return MISSING
    return f"{_text(replicas.current)}/{_text(replicas.desired)}"


def primary_cell(primary: StatusPrimary | None) -> str:
    """status.primary's pod; `-` when status names none (an operator before roles, or none found)."""
    return MISSING if primary is None else _text(primary.pod)


def pool_cell(endpoints: list[str] | None, width: int = POOL_NAMES_WIDTH) -> str:
    """status.readEndpoints: the names when they fit in `width`, else how many there are."""
    if endpoints is None:
        return MISSING
    if not endpoints:
        return "none"
    joined = ",".join(endpoints)
    return joined if len(joined) <= width else f"{len(endpoints)} endpoints"


def not_ok_conditions(conditions: list[StatusCondition] | None) -> list[str]:
    """`Type=Status(Reason)` for each condition whose status is not its OK status.

    A condition of a type this version does not know is shown unless it is False (a new problem
    condition would be named after the problem)."""
    out: list[str] = []
    for c in conditions or []:
        if c.status.value == OK_STATUS.get(c.type, "False"):
            continue
        out.append(f"{c.type}={c.status}({c.reason})" if c.reason else f"{c.type}={c.status}")
    return out


def not_ok_cell(conditions: list[StatusCondition] | None, limit: int = NOT_OK_SHOWN) -> str:
    """The not-OK conditions, the definite ones (True/False) before the Unknown ones, at most
    `limit` of them and then how many more (`explain` lists them all); `-` when all are OK."""
    found = not_ok_conditions(conditions)
    if not found:
        return MISSING
    found.sort(key=lambda c: c.split("=", 1)[1].startswith("Unknown"))
    shown = found[:limit]
    if len(found) > limit:
        shown.append(f"+{len(found) - limit} more")
    return ",".join(shown)


def mode_cell(mode: EffectiveMode | None, paused: bool) -> str:
    """status.mode, or `Pausing`/`Resuming` while the pause annotation (`paused`) and status
    disagree (it was just set or removed and the operator has not reported since)."""
    text = _text(mode)
    if paused and text not in (MISSING, EffectiveMode.PAUSED.value):
        return "Pausing"
    if not paused and mode is EffectiveMode.PAUSED:
        return "Resuming"
    return text


def row(obj: Mapping[str, Any]) -> Row:
    """One table row from one ReadWriteWorkload object."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    namespace, name = _text(meta.get("namespace")), _text(meta.get("name"))
    raw = obj.get("status")
    if not isinstance(raw, Mapping) or not raw:
        return Row(
            namespace=namespace,
            name=name,
            workload_class=MISSING,
            ratio=MISSING,
            replicas=MISSING,
            primary=MISSING,
            read_pool=MISSING,
            max_lag=MISSING,
            mode=MISSING,
            not_ok="no status yet (is the operator running?)",
        )
    status = parse_status(raw)
    return Row(
        namespace=namespace,
        name=name,
        workload_class=_text(status.workloadClass),
        ratio=ratio_cell(status.readWriteRatio),
        replicas=replicas_cell(status.replicas),
        primary=primary_cell(status.primary),
        read_pool=pool_cell(status.readEndpoints),
        max_lag=_text(status.maxReplicationLag),
        mode=mode_cell(status.mode, is_paused(obj)),
        not_ok=not_ok_cell(status.conditions),
    )


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns left-aligned and separated by three spaces, as kubectl prints; no trailing blanks."""
    table = [list(header), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return "\n".join(lines)


def render(objects: Iterable[Mapping[str, Any]], *, all_namespaces: bool) -> str:
    """The status table, sorted by namespace and name (the NAMESPACE column only with -A)."""
    rows = sorted((row(o) for o in objects), key=lambda r: (r.namespace, r.name))
    header = (NAMESPACE_HEADER, *HEADERS) if all_namespaces else HEADERS
    return format_table(header, (r.cells(all_namespaces) for r in rows))
