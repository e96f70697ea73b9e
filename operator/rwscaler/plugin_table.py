"""The table of `kubectl rwscaler status`: ReadWriteWorkload objects (plain dicts, as read from
the API) -> rows of short cells -> aligned text. Pure: no I/O, no clock.

Called by `rwscaler.command_plugin`. Every cell comes from what the operator's tick wrote in
status (`rwscaler.report.render_status`); nothing is recomputed. A value that is absent prints
as `-` and a signal the operator could not read prints as `unknown` (as status says it), never 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rwscaler.core.spec import is_paused
from rwscaler.core.vocabulary import ConditionType

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

HEADERS = ("NAME", "CLASS", "RATIO", "REPLICAS", "READ POOL", "MAX LAG", "MODE", "NOT OK")
NAMESPACE_HEADER = "NAMESPACE"


@dataclass(frozen=True, slots=True)
class Row:
    namespace: str
    name: str
    workload_class: str
    ratio: str
    replicas: str
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
            self.read_pool,
            self.max_lag,
            self.mode,
            self.not_ok,
        )
        return (self.namespace, *own) if with_namespace else own


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    """A status value as a cell: absent or empty -> `-`; anything else as written."""
    if value is None or value == "":
        return MISSING
    return str(value)


def ratio_cell(value: Any) -> str:
    """status.readWriteRatio ("10.0", "inf", "unknown") as read:write ("10.0:1")."""
    text = _text(value)
    if text in (MISSING, "unknown"):
        return text
    return f"{text}:1"


def replicas_cell(replicas: Any) -> str:
    """status.replicas as current/desired; a side that is absent is `-` (never 0)."""
    r = _mapping(replicas)
    if not r:
        return MISSING
    return f"{_text(r.get('current'))}/{_text(r.get('desired'))}"


def pool_cell(endpoints: Any, width: int = POOL_NAMES_WIDTH) -> str:
    """status.readEndpoints: the names when they fit in `width`, else how many there are."""
    if not isinstance(endpoints, list):
        return MISSING
    names = [str(e) for e in endpoints]
    if not names:
        return "none"
    joined = ",".join(names)
    return joined if len(joined) <= width else f"{len(names)} endpoints"


def not_ok_conditions(conditions: Any) -> list[str]:
    """`Type=Status(Reason)` for each condition whose status is not its OK status.

    A condition of a type this version does not know is shown unless it is True (a new problem
    condition would be named after the problem)."""
    out: list[str] = []
    for c in conditions if isinstance(conditions, list) else []:
        if not isinstance(c, Mapping):
            continue
        kind, status = str(c.get("type", "?")), str(c.get("status", "Unknown"))
        if status == OK_STATUS.get(kind, "False"):
            continue
        reason = c.get("reason")
        out.append(f"{kind}={status}({reason})" if reason else f"{kind}={status}")
    return out


def not_ok_cell(conditions: Any, limit: int = NOT_OK_SHOWN) -> str:
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


def mode_cell(obj: Mapping[str, Any]) -> str:
    """status.mode, or `Pausing`/`Resuming` while the pause annotation and status disagree (it
    was just set or removed and the operator has not reported since)."""
    mode = _text(_mapping(obj.get("status")).get("mode"))
    paused = is_paused(obj)
    if paused and mode not in (MISSING, "Paused"):
        return "Pausing"
    if not paused and mode == "Paused":
        return "Resuming"
    return mode


def row(obj: Mapping[str, Any]) -> Row:
    """One table row from one ReadWriteWorkload object."""
    meta = _mapping(obj.get("metadata"))
    status = _mapping(obj.get("status"))
    namespace, name = _text(meta.get("namespace")), _text(meta.get("name"))
    if not status:
        return Row(
            namespace=namespace,
            name=name,
            workload_class=MISSING,
            ratio=MISSING,
            replicas=MISSING,
            read_pool=MISSING,
            max_lag=MISSING,
            mode=MISSING,
            not_ok="no status yet (is the operator running?)",
        )
    return Row(
        namespace=namespace,
        name=name,
        workload_class=_text(status.get("workloadClass")),
        ratio=ratio_cell(status.get("readWriteRatio")),
        replicas=replicas_cell(status.get("replicas")),
        read_pool=pool_cell(status.get("readEndpoints")),
        max_lag=_text(status.get("maxReplicationLag")),
        mode=mode_cell(obj),
        not_ok=not_ok_cell(status.get("conditions")),
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
