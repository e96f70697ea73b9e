"""Every metric name a preset reads is one a real exporter exports (issue 12, item 6).

The expectations are the recorded ``/metrics`` dumps in ``tests/fixtures/exporter-metrics/``
(``make record-exporter-metrics``, tools/record_exporter_metrics.py), never constants of the
code under test. Each PromQL template of each preset (``presets.all_templates()``: the value
expression and the freshness expression) is tokenised here, independently of rwscaler's own
PromQL helpers, into its selectors (``metric{matchers}``; function names, aggregation operators,
grouping and matcher labels, strings and ``[...]`` ranges are not metric names), and:

- every selected name must appear in a dump of an exporter that preset is for; names joined
  with ``or`` (exporter generations, MySQL before and after 8.4) each need some dump;
- every label a selector matches on (other than the ``namespace`` and ``pod`` target labels
  Prometheus adds) must be a label of that metric in such a dump;
- for the ``pgbouncer`` templates, each alternative of an ``or`` (an operand with no ``or``
  inside) reads one exporter generation: its names must all come from ONE dump.

So renaming a metric (in a preset, an extension query, or by an exporter upgrade that is then
re-recorded) fails here instead of in a user's workload.

Provenance: each dump's first line says ``provenance=run`` (recorded from a real exporter on
this machine) or ``provenance=source`` (an exporter that cannot run here, its names read from
its source; the header says where). Run here: postgres_exporter 0.11.1 (Debian; the project's
extension queries), CloudNativePG 1.30.0's default monitoring queries through that exporter,
Spreaker's prometheus-pgbouncer-exporter 2.1.2, prometheus-community pgbouncer_exporter 0.10.2
and 0.12.1, mysqld_exporter 0.14.0 (Debian) on MariaDB 10.11. From source, not run: the
CloudNativePG Pooler's cnpg_pgbouncer_* names, mysqld_exporter's MySQL 8.4 replica-status names
and Percona Server's read/write response time histograms. A failure message says which dumps
were searched and their provenance.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rwscaler.metrics.presets import all_templates

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exporter-metrics"

#: Which exporters each preset (``all_templates()``'s keys) is written for, by the dumps'
#: ``exporter=`` (docs/metrics.md, "Exporter versions").
PRESET_EXPORTERS: dict[str, tuple[str, ...]] = {
    "pgbouncer": ("prometheus-pgbouncer-exporter", "pgbouncer_exporter", "cnpg-pooler"),
    "postgres": ("postgres_exporter",),
    "cnpg": ("cnpg",),
    "mysql": ("mysqld_exporter",),
}
#: Added by Prometheus from the scrape target (Kubernetes service discovery), not by an exporter.
TARGET_LABELS = frozenset({"namespace", "pod"})


# ---- the dumps ---------------------------------------------------------------------------------
@dataclass
class Dump:
    path: Path
    exporter: str
    version: str
    role: str
    provenance: str
    labels: dict[str, set[str]] = field(default_factory=dict)
    """metric name -> every label name it carries in this dump."""

    def __str__(self) -> str:
        return f"{self.path.name} ({self.provenance})"


_HEADER = re.compile(r"^# rwscaler-fixture: (.*)$")
_SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([a-zA-Z0-9_,]*)\})?$")


def load_dump(path: Path) -> Dump:
    lines = path.read_text().splitlines()
    m = _HEADER.match(lines[0]) if lines else None
    assert m, f"{path.name}: the first line must be '# rwscaler-fixture: exporter=... provenance=...'"
    meta = dict(item.split("=", 1) for item in m.group(1).split())
    dump = Dump(path, meta["exporter"], meta["version"], meta["role"], meta["provenance"])
    for line in lines[1:]:
        if not line or line.startswith("#"):
            continue
        s = _SERIES.match(line)
        assert s, f"{path.name}: not a 'name{{label,names}}' line: {line!r}"
        dump.labels.setdefault(s.group(1), set()).update(x for x in (s.group(2) or "").split(",") if x)
    return dump


def all_dumps() -> list[Dump]:
    return [load_dump(p) for p in sorted(FIXTURES.glob("*.prom"))]


def dumps_for(preset: str) -> list[Dump]:
    return [d for d in all_dumps() if d.exporter in PRESET_EXPORTERS[preset]]


# ---- PromQL selectors, by a tokenizer of our own ------------------------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<placeholder>\$\{[^}]*\})
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]])
    )""",
    re.VERBOSE,
)
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _GROUPING | {"and", "or", "unless", "bool", "offset", "atan2"}


@dataclass(frozen=True)
class Selector:
    name: str
    matched_labels: frozenset[str]


def tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = _TOKEN.match(expr, pos)
        assert m and m.end() > pos, f"cannot tokenise {expr[pos : pos + 40]!r}"
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def selectors(expr: str) -> list[Selector]:
    """The metric selectors of a PromQL expression, in order."""
    toks = tokens(expr)
    found: list[Selector] = []
    stack: list[str] = []  # "(" call or group, "labels" a grouping list, "[" a range
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "op" and text in "([":
            stack.append(text)
        elif kind == "op" and text in ")]":
            stack.pop()
        elif stack and stack[-1] in ("labels", "["):
            pass  # label names of by/on(...), durations and placeholders of [...]
        elif kind == "ident" and text in _KEYWORDS:
            if text in _GROUPING and nxt == "(":
                stack.append("labels")
                i += 1
            elif text == "offset":  # a duration: [-] number unit [number unit ...]
                i += 1 + (nxt == "-")
                while i < len(toks) and toks[i][0] == "number":
                    i += 2
                i -= 1
        elif kind == "ident" and nxt in ("(", "by", "without"):
            pass  # a function or an aggregation operator
        elif kind == "ident":
            matched: set[str] = set()
            if nxt == "{":
                j = i + 2
                while toks[j][1] != "}":
                    if toks[j][0] == "ident" and toks[j + 1][1] in ("=", "!=", "=~", "!~"):
                        matched.add(toks[j][1])
                    j += 1
                i = j
            found.append(Selector(text, frozenset(matched)))
        elif kind == "op" and text == "{":
            raise AssertionError(f"a selector without a metric name in {expr!r}")
        i += 1
    assert not stack, f"unbalanced brackets in {expr!r}"
    return found


def or_alternatives(expr: str) -> list[str]:
    """The operands of every ``or`` in the expression, at any depth, that hold no ``or`` themselves.

    Within each bracket (and the whole expression), the text is cut at that level's commas
    (function arguments) and then at that level's ``or`` operators; a cut into two or more
    operands yields each operand without a nested ``or``, and nested brackets are searched the
    same way: ``label_replace(a or (b or c), ...) or d`` gives ``a``, ``b``, ``c`` and ``d``.
    """
    found: list[str] = []

    def visit(text: str) -> None:
        args: list[list[str]] = [[]]  # per argument, its operands
        start = depth = 0
        child_start = 0
        nested_or = False  # the current operand has an `or` inside a bracket
        nested: list[bool] = []
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup
            tok = m.group(kind) if kind else ""
            at = m.start(kind) if kind else m.start()
            if kind == "op" and tok in "([{":
                if depth == 0:
                    child_start = m.end()
                depth += 1
            elif kind == "op" and tok in ")]}":
                depth -= 1
                if depth == 0:
                    visit(text[child_start:at])
            elif depth == 0 and ((kind == "op" and tok == ",") or (kind == "ident" and tok == "or")):
                args[-1].append(text[start:at])
                nested.append(nested_or)
                nested_or = False
                if tok == ",":
                    args.append([])
                start = m.end()
            elif kind == "ident" and tok == "or":
                nested_or = True
        args[-1].append(text[start:])
        nested.append(nested_or)
        flags = iter(nested)
        for operands in args:
            own = [next(flags) for _ in operands]
            if len(operands) > 1:
                found.extend(op for op, has_or in zip(operands, own, strict=True) if not has_or)

    visit(expr)
    return [alt.strip() for alt in found]


def test_the_tokenizer_takes_selectors_not_functions_labels_or_strings() -> None:
    expr = (
        'max by (namespace, pod) (label_replace(a_total{namespace=~"${namespace}", x="1"}[${window}],'
        ' "pod", "$1", "application_name", "(.+)") - on (namespace, pod) group_left (le)'
        " clamp_min(idelta(b[5m]), 0) * 1e-6 or sum(rate(c:d{}[1m])) / count without (q) (e offset 1m))"
    )
    assert [(s.name, set(s.matched_labels)) for s in selectors(expr)] == [
        ("a_total", {"namespace", "x"}),
        ("b", set()),
        ("c:d", set()),
        ("e", set()),
    ]
    assert or_alternatives('label_replace(a or (b or c), "x", "", "", "") or sum by (q) (d + e)') == [
        "b",
        "c",
        "a",
        "sum by (q) (d + e)",
    ]
    assert or_alternatives("a and on (x) b") == []


# ---- the contract -------------------------------------------------------------------------------
def preset_selectors() -> list[tuple[str, str, Selector]]:
    """(preset, where, selector) for every selector of every template, deduplicated."""
    out: dict[tuple[str, Selector], str] = {}
    for preset, templates in all_templates().items():
        for index, template in enumerate(templates):
            for part, expr in (("expr", template.expr), ("fresh", template.fresh)):
                for sel in selectors(expr or ""):
                    out.setdefault((preset, sel), f"template {index} ({part}, {template.owner})")
    return [(preset, where, sel) for (preset, sel), where in out.items()]


def _id(case: tuple[str, str, Selector]) -> str:
    preset, _, sel = case
    return f"{preset}-{sel.name}" + (
        f"{{{','.join(sorted(sel.matched_labels))}}}" if sel.matched_labels else ""
    )


def test_every_preset_has_dumps_and_every_dump_a_known_exporter() -> None:
    dumps = all_dumps()
    assert dumps, f"no dumps in {FIXTURES}; run `make record-exporter-metrics`"
    known = {e for exporters in PRESET_EXPORTERS.values() for e in exporters}
    for dump in dumps:
        assert dump.exporter in known, f"{dump}: exporter {dump.exporter!r} belongs to no preset"
        assert dump.provenance in ("run", "source"), dump
        assert dump.labels, f"{dump}: no series"
    assert set(PRESET_EXPORTERS) == set(all_templates()), (
        "a preset without its exporters here, or the reverse"
    )
    for preset in PRESET_EXPORTERS:
        assert any(d.provenance == "run" for d in dumps_for(preset)), f"{preset}: no dump recorded from a run"


@pytest.mark.parametrize("case", preset_selectors(), ids=_id)
def test_every_name_a_preset_reads_is_in_a_recorded_dump(case: tuple[str, str, Selector]) -> None:
    preset, where, sel = case
    dumps = dumps_for(preset)
    having = [d for d in dumps if sel.name in d.labels]
    if not having:
        known = sorted({n for d in dumps for n in d.labels})
        near = difflib.get_close_matches(sel.name, known, n=3, cutoff=0.75)
        pytest.fail(
            f"preset {preset}, {where}, reads {sel.name}, which no recorded exporter exports.\n"
            f"  searched: {', '.join(map(str, dumps))}\n"
            f"  closest names in them: {near or 'none'}\n"
            "  A renamed metric? Fix the preset (or the query file) and re-record: make record-exporter-metrics",
            pytrace=False,
        )
    labels = sel.matched_labels - TARGET_LABELS
    missing = {lab for lab in labels if not any(lab in d.labels[sel.name] for d in having)}
    assert not missing, (
        f"preset {preset}, {where}: {sel.name} is matched on {sorted(missing)}, a label it has in no dump "
        f"({'; '.join(f'{d}: {sorted(d.labels[sel.name])}' for d in having)})"
    )


@pytest.mark.parametrize("index", range(len(all_templates()["pgbouncer"])))
def test_each_pgbouncer_alternative_reads_one_exporters_names(index: int) -> None:
    """The PgBouncer templates ask every exporter generation, joined with ``or``: an alternative
    mixing two generations' names would never have all its series at once."""
    template = all_templates()["pgbouncer"][index]
    dumps = dumps_for("pgbouncer")
    alternatives = [alt for expr in (template.expr, template.fresh or "") for alt in or_alternatives(expr)]
    assert alternatives, "the PgBouncer templates ask every exporter generation, joined with `or`"
    for alt in alternatives:
        names = {s.name for s in selectors(alt)}
        assert any(names <= set(d.labels) for d in dumps), (
            f"the alternative {alt!r} reads {sorted(names)}, no single exporter's names: "
            + "; ".join(f"{d} has {sorted(names & set(d.labels))}" for d in dumps)
        )
