"""The history of the read load and of the read:write ratio, read from Prometheus.

Fills `Observation.history` (core/observation.py: `History`, `Season`, `RatioHistory`) so that a
new or restarted operator has the seasons and the trend points from its first tick. Called by
`prometheus.py`, which hands each workload's read-QPS and write-QPS template (the preset's, or
the workload's custom query) and runs the queries this module renders. docs/history.md is the
user's reference.

Per group of workloads (the same grouping as the signals: same Prometheus, timeout, rate window,
templates and trend settings), whatever the number of workloads in it:

- **seasons**, one instant query at most once a minute (SEASONS_REFRESH_S): `now` (the 5-minute average read QPS now) and for
  each season P, `then` (the same average at now - P), `peak_up` and `peak_down` (the highest 5-minute average over the up and
  down horizons that followed now - P), each part told apart by the `rwscaler_part` label;
- **ratio points**, one range query (step = the trend period) and **recent / recent_before**,
  one instant query, both kept `RATIO_REFRESH_S` (a point is an average over a week: 15
  minutes move it by about 0.15 %, and the query reads the whole trend window's samples).

The placeholders naming pods are widened for history: where the primary and the replicas are
two StatefulSets, `${replica_pods}`/`${primary_pods}`/`${pods}` match every pod the sets may
have had (`<set>-[0-9]+`), so the reads of replicas scaled in since still count. Where both
roles share one set (CloudNativePG), roles move between pods and the current pods are kept
(only `${pods}`, all the set's pods, is widened).

Nothing here raises: a failed or unusable answer is None in the History (unknown, never 0),
and a failure is logged once at warning until the same query answers again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rwscaler.core.forecast import horizons
from rwscaler.core.observation import History, RatioHistory, Season
from rwscaler.core.placeholders import WINDOW_PLACEHOLDER
from rwscaler.core.spec import SEASON_SMOOTHING_S, STATEFULSET_KIND, ReadWriteWorkloadSpec
from rwscaler.metrics.client import Endpoint, QueryFailure, QueryResult, RangeResult
from rwscaler.metrics.group import Key, owner_keys
from rwscaler.metrics.promql import (
    PART_LABEL,
    TemplateError,
    expansions,
    format_window,
    promql_string_escape,
    re2_escape,
    render,
    set_of,
    sets_of,
)
from rwscaler.metrics.signals import Owner
from rwscaler.metrics.source import WorkloadQuery

log = logging.getLogger(__name__)

# The resolution of the 5-minute averages: five points of the read QPS (whose rate window is at
# least 60 s, so the points' windows tile the 5 minutes).
RESOLUTION_S = 60
# A peak is the highest of at most this many 5-minute averages (one a minute up to 2 h of
# horizon; coarser beyond): each costs 5 evaluations of the read expression.
PEAK_STEPS = 120
# The ratio's averages are sampled every period / 24, at most hourly, at least every minute; the
# read expression's rate window is the same, so the samples' windows tile the period exactly.
RATIO_STEP_MAX_S = 3600
# A period is "wholly recorded" when its expression had a value at all but one of these evenly
# spaced instants (every 6 h of a week): a Prometheus restart does not void a week, a series that
# began mid-period does.
COVERAGE_CHECKS = 28
RATIO_REFRESH_S = 900.0
RATIO_RETRY_S = 120.0
# A seasons answer is kept this long: its parts are 5-minute averages sampled at whole minutes
# (a subquery's steps are aligned to multiples of its resolution), so asking again within the
# minute mostly reads the same samples. At 1,000 workloads in a group the query is the costliest
# Prometheus sends (about 760 evaluations of the read expression over every member's series).
SEASONS_REFRESH_S = float(RESOLUTION_S)


@dataclass(frozen=True, slots=True)
class Side:
    """How one side's QPS is asked: a template and how its series are split per workload."""

    template: str
    by: tuple[str, ...] = ()
    owner: Owner | None = None  # None: a custom query, the one workload's only series


@dataclass(frozen=True, slots=True)
class Params:
    """The history a workload's spec asks for."""

    seasons: tuple[int, ...]
    horizon_up_s: float
    horizon_down_s: float
    period_s: int
    points: int
    shift_s: int

    @classmethod
    def of(cls, spec: ReadWriteWorkloadSpec) -> Params:
        up, down = horizons(spec, float(spec.behavior.intervalSeconds))
        trend = spec.behavior.trend
        return cls(
            tuple(trend.seasonsSeconds),
            up,
            down,
            trend.periodSeconds,
            trend.windowSeconds // trend.periodSeconds,
            trend.shiftSeconds,
        )

    def unknown(self) -> History:
        """The history with every value unknown (not readable, or not recorded)."""
        return History(
            self.horizon_up_s,
            self.horizon_down_s,
            tuple(Season(float(p)) for p in self.seasons),
            RatioHistory(float(self.period_s), (None,) * self.points, float(self.shift_s)),
        )


@dataclass(frozen=True, slots=True)
class Wanted:
    """One workload's history request: where to ask, and its read and write sides."""

    query: WorkloadQuery
    endpoint: Endpoint
    timeout_s: float
    window_s: float  # the signals' rate window, `${window}` of the season queries
    read: Side | None
    write: Side | None


@dataclass(frozen=True, slots=True)
class Job:
    """One history query to send: instant when `span` is None, else a range query."""

    endpoint: Endpoint
    expr: str
    timeout_s: float
    span: tuple[float, float, float] | None = None  # start, end, step


# ---- PromQL ---------------------------------------------------------------------------------------
def _s(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"


def tag(expr: str, part: str) -> str:
    return f'label_replace({expr}, "{PART_LABEL}", "{part}", "", "")'


def _smoothed(expr: str) -> str:
    return f"avg_over_time(({expr})[{SEASON_SMOOTHING_S}s:{RESOLUTION_S}s]"


def then_expr(expr: str, season_s: int) -> str:
    """The 5-minute average of `expr` ending one season ago."""
    return f"{_smoothed(expr)} offset {season_s}s)"


def peak_step(horizon_s: int) -> int:
    return max(RESOLUTION_S, math.ceil(horizon_s / PEAK_STEPS / 60) * 60)


def peak_expr(expr: str, season_s: int, horizon_s: float) -> str:
    """The highest 5-minute average of `expr` over [now - season, now - season + horizon].

    The subquery's window ends at now - season + horizon, so its offset is season - horizon
    (a horizon longer than the season stops at now: negative offsets need a feature flag)."""
    h = min(math.ceil(horizon_s), season_s)
    if h <= 0:  # no horizon: the peak of one instant is the average then
        return then_expr(expr, season_s)
    offset = season_s - h
    at = f" offset {offset}s" if offset > 0 else ""
    return f"max_over_time({_smoothed(expr)})[{h}s:{peak_step(h)}s]{at})"


def seasons_expr(read_expr: str, seasons: Iterable[int], up_s: float, down_s: float) -> str:
    # "now": the same 5-minute average as "then", so the seasons' growth compares like with like.
    parts: list[str] = [tag(f"{_smoothed(read_expr)})", "now")]
    for season in seasons:
        parts.append(tag(then_expr(read_expr, season), f"then:{season}"))
        parts.append(tag(peak_expr(read_expr, season, up_s), f"up:{season}"))
        parts.append(tag(peak_expr(read_expr, season, down_s), f"down:{season}"))
    return " or ".join(parts)


def avg_step(span_s: int) -> int:
    return max(RESOLUTION_S, min(RATIO_STEP_MAX_S, span_s // 24 // 60 * 60))


def coverage_step(span_s: int) -> int:
    return max(RESOLUTION_S, span_s // COVERAGE_CHECKS // 60 * 60)


def covered(count: float | None, span_s: int) -> bool:
    """True when the count of coverage instants says the span is (all but one) recorded."""
    return count is not None and count >= span_s // coverage_step(span_s) - 1


def _averages(side: str, expr: str, span_s: int, offset_s: int = 0, suffix: str = "") -> list[str]:
    at = f" offset {offset_s}s" if offset_s > 0 else ""
    return [
        tag(f"avg_over_time(({expr})[{span_s}s:{avg_step(span_s)}s]{at})", f"{side}{suffix}"),
        tag(f"count_over_time(({expr})[{span_s}s:{coverage_step(span_s)}s]{at})", f"{side}{suffix}_n"),
    ]


def points_expr(read_expr: str, write_expr: str, period_s: int) -> str:
    """Per period: each side's average QPS and its coverage count (a range query, step = period)."""
    return " or ".join([*_averages("read", read_expr, period_s), *_averages("write", write_expr, period_s)])


def recent_expr(read_expr: str, write_expr: str, shift_s: int, period_s: int) -> str:
    parts: list[str] = []
    for suffix, offset in ((":recent", 0), (":before", period_s)):
        parts += _averages("read", read_expr, shift_s, offset, suffix)
        parts += _averages("write", write_expr, shift_s, offset, suffix)
    return " or ".join(parts)


def _set_pattern(statefulset: str) -> str:
    return re2_escape(statefulset) + "-[0-9]+"


def _sets(q: WorkloadQuery) -> tuple[set[str], set[str]]:
    """The sets the primary and the replicas run in: those of the pods now, and in the pair
    layout the two StatefulSets the spec names even when one has no pod now."""
    primary, replica = set(sets_of(q.primary_pods)), set(sets_of(q.replica_pods))
    apart = q.spec.primary_apart
    target = q.spec.replicas.target
    if apart is not None and not primary & replica:
        primary.add(apart)
        if target.kind == STATEFULSET_KIND:
            replica.add(target.name)
    return primary, replica


def history_expansions(members: Sequence[WorkloadQuery], window: str) -> dict[str, str]:
    """`expansions`, with the pod placeholders widened to every pod the sets may have had.

    Where the primary runs in sets of its own (the pair layout), the history asks for any pod of
    those sets, so pods that came and went over the weeks count; where roles move between the
    pods of one set (Patroni, CloudNativePG), only the pods that have each role now can say
    which role a series had."""
    values = expansions(members, window)
    pieces: dict[str, set[str]] = {"primary_pods": set(), "replica_pods": set(), "pods": set()}
    for q in members:
        primary, replica = _sets(q)
        if primary & replica or "" in primary | replica:
            pieces["primary_pods"].update(re2_escape(p) for p in q.primary_pods)
            pieces["replica_pods"].update(re2_escape(p) for p in q.replica_pods)
            pieces["pods"].update(_set_pattern(s) for s in sets_of(q.pods) if s)
            pieces["pods"].update(re2_escape(p) for p in q.pods if not set_of(p))
        else:
            pieces["primary_pods"].update(_set_pattern(s) for s in primary)
            pieces["replica_pods"].update(_set_pattern(s) for s in replica)
            pieces["pods"].update(_set_pattern(s) for s in primary | replica)
    for name, found in pieces.items():
        if found:
            values[name] = promql_string_escape("|".join(sorted(found)))
    return values


@dataclass(slots=True)
class _Texts:
    """A group's history queries, rendered for exactly these members: a read renders them again
    only when the members (their specs, their pods) change, not on every read (rendering is a
    large share of a grouped read's CPU at 1,000 workloads)."""

    queries: tuple[WorkloadQuery, ...]
    seasons: str | None
    points: str | None  # None with recent: no ratio queries (no write side or no points)
    recent: str | None
    used: float = 0.0


def _render_texts(first: Wanted, params: Params, members: tuple[WorkloadQuery, ...]) -> _Texts:
    """Raises TemplateError."""
    assert first.read is not None
    widened = history_expansions(members, "")  # every query's own window is put in below

    def side(s: Side, window_s: float) -> str:
        window = format_window(window_s)
        return render(s.template, members, window, {**widened, WINDOW_PLACEHOLDER: window})

    seasons = points = recent = None
    if params.seasons:
        read = side(first.read, first.window_s)
        seasons = seasons_expr(read, params.seasons, params.horizon_up_s, params.horizon_down_s)
    if first.write is not None and params.points >= 1:
        period, shift = params.period_s, params.shift_s
        pw = max(float(avg_step(period)), first.window_s)
        sw = max(float(avg_step(shift)), first.window_s)
        points = points_expr(side(first.read, pw), side(first.write, pw), period)
        recent = recent_expr(side(first.read, sw), side(first.write, sw), shift, period)
    return _Texts(members, seasons, points, recent)


# ---- splitting --------------------------------------------------------------------------------------
Index = dict[Key, list[float]]


def history_keys(side: Side, q: WorkloadQuery) -> list[Key]:
    """The keys of a workload's series; every set for ALL_SETS, whatever the pods now."""
    if side.owner is None:
        return [()]
    if side.owner is Owner.ALL_SETS:
        primary, replica = _sets(q)
        return [(q.namespace, s) for s in sorted(primary | replica)]
    return owner_keys(side.owner, q)


def total(
    index: Mapping[Key, list[float]], keys: Sequence[Key], combine: Callable[[list[float]], float] = sum
) -> float | None:
    """The keys' values combined (a key without series adds nothing: a set with no pods then);
    None when no key has a value, a key has several series, or the result is not finite."""
    found: list[float] = []
    for key in keys:
        values = index.get(key)
        if not values:
            continue
        if len(values) > 1:
            return None
        found.append(values[0])
    if not found:
        return None
    value = combine(found)
    return value if math.isfinite(value) else None


class _Parts:
    """An answer's series by part, indexed by (part, by) once for all the group's members."""

    def __init__(self) -> None:
        self._series: dict[str, list[tuple[dict[str, str], float]]] = {}
        self._indexes: dict[tuple[str, tuple[str, ...]], Index] = {}

    def add(self, labels: dict[str, str], value: float) -> None:
        self._series.setdefault(labels.get(PART_LABEL, ""), []).append((labels, value))

    def value(self, part: str, of: _Sought, combine: Callable[[list[float]], float] = sum) -> float | None:
        index = self._indexes.get((part, of.by))
        if index is None:
            index = self._indexes[(part, of.by)] = {}
            for labels, v in self._series.get(part, []):
                index.setdefault(tuple(labels.get(b, "") for b in of.by), []).append(v)
        return total(index, of.keys, combine)


@dataclass(frozen=True, slots=True)
class _Sought:
    """One side's `by` labels and one workload's keys in them, found once per workload and read:
    a workload reads some twenty parts of the answers with the same keys."""

    by: tuple[str, ...]
    keys: list[Key]

    @classmethod
    def of(cls, side: Side, q: WorkloadQuery) -> _Sought:
        return cls(side.by, history_keys(side, q))


def instant_parts(result: QueryResult) -> _Parts | None:
    if isinstance(result, QueryFailure):
        return None
    parts = _Parts()
    for s in result:
        parts.add(s.labels, s.value)
    return parts


def range_parts(result: RangeResult, start: float, step: float, points: int) -> list[_Parts] | None:
    """One `_Parts` per evaluation instant start + k * step, k = 0 .. points - 1."""
    if isinstance(result, QueryFailure):
        return None
    out = [_Parts() for _ in range(points)]
    for s in result:
        for ts, v in s.values:
            k = round((ts - start) / step)
            if 0 <= k < points:
                out[k].add(s.labels, v)
    return out


def ratio(parts: _Parts | None, read: _Sought, write: _Sought, span_s: int, suffix: str = "") -> float | None:
    """Average read QPS over average write QPS; None unless both are known, wholly recorded and
    the writes are above 0."""
    if parts is None:
        return None
    reads = parts.value(f"read{suffix}", read)
    writes = parts.value(f"write{suffix}", write)
    if reads is None or writes is None or writes <= 0 or reads < 0:
        return None
    for side_name, side in (("read", read), ("write", write)):
        if not covered(parts.value(f"{side_name}{suffix}_n", side, max), span_s):
            return None
    return reads / writes


# ---- the reader -------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Group:
    key: tuple[object, ...]  # what its members share (plan): the group, whoever its members
    members: list[Wanted]
    params: Params
    seasons: Job | None = None
    points: Job | None = None
    recent: Job | None = None
    ratios: bool = False  # asks the ratio queries (their answers are kept under `key`)


@dataclass(frozen=True, slots=True)
class _KeptSeasons:
    at: float
    text: str  # the query answered (it names the members)
    parts: _Parts


@dataclass(slots=True)
class Planned:
    """One read's history: its groups, the workloads without any, and the queries to send.
    (One per read: reads of different groups run concurrently.)"""

    groups: list[_Group]
    none: dict[str, History]
    jobs: list[Job]


@dataclass(slots=True)
class _Kept:
    """A group's ratio answers, split by part once when they arrive: every member reads them on
    every read for 15 minutes (splitting them per member was quadratic in the group's size)."""

    at: float
    points: list[_Parts] | None  # one per point; None: the query failed
    recent: _Parts | None
    good: bool
    texts: tuple[str, str]  # the points and recent queries answered (they name the members)


@dataclass(slots=True)
class HistoryReader:
    """Plans a read's history queries (`plan`), then turns their answers into Histories
    (`finish`); keeps the ratio answers between reads and remembers which queries fail."""

    refresh_s: float = RATIO_REFRESH_S
    retry_s: float = RATIO_RETRY_S
    seasons_refresh_s: float = SEASONS_REFRESH_S
    _kept: dict[tuple[object, ...], _Kept] = field(default_factory=dict)
    _texts: dict[tuple[object, ...], _Texts] = field(default_factory=dict)
    _seasons: dict[tuple[object, ...], _KeptSeasons] = field(default_factory=dict)
    _failing: set[tuple[str, str]] = field(default_factory=set)

    def plan(self, wanted: Sequence[Wanted], now: float) -> Planned:
        """The queries this read must send (the ratio ones only when their copy is too old)."""
        planned = Planned([], {}, [])
        by_key: dict[tuple[object, ...], _Group] = {}
        for w in wanted:
            params = Params.of(w.query.spec)
            if w.read is None:
                planned.none[w.query.key] = params.unknown()
                continue
            custom = w.read.owner is None or (w.write is not None and w.write.owner is None)
            key = (
                w.endpoint,
                w.timeout_s,
                w.window_s,
                w.read,
                w.write,
                params,
                w.query.key if custom else "",
            )
            group = by_key.get(key)
            if group is None:
                group = by_key[key] = _Group(key, [], params)
            group.members.append(w)
        for group in by_key.values():
            self._render(group, now)
            planned.jobs += [j for j in (group.seasons, group.points, group.recent) if j is not None]
            planned.groups.append(group)
        planned.jobs = list(dict.fromkeys(planned.jobs))
        self._forget(now)
        return planned

    def _render(self, group: _Group, now: float) -> None:
        first, params = group.members[0], group.params
        members = tuple(w.query for w in group.members)
        texts = self._texts.get(group.key)
        if texts is None or texts.queries != members:
            try:
                texts = self._texts[group.key] = _render_texts(first, params, members)
            except TemplateError as err:
                self._texts.pop(group.key, None)
                self._warn(first.endpoint, "render", f"cannot render the history queries: {err}")
                return
        texts.used = now
        if texts.seasons is not None:
            kept_seasons = self._seasons.get(group.key)
            if (
                kept_seasons is None
                or kept_seasons.text != texts.seasons
                or not 0 <= now - kept_seasons.at < self.seasons_refresh_s
            ):
                group.seasons = Job(first.endpoint, texts.seasons, first.timeout_s)
        if texts.points is None or texts.recent is None:
            return
        # Kept per group, whatever its members: answers for other members (before a workload
        # came or went) are replaced, not kept beside the new ones. Keyed by the query texts, a
        # fleet whose workloads come and go kept a 12-week answer per membership for an hour.
        group.ratios = True
        kept = self._kept.get(group.key)
        fresh = kept is not None and 0 <= now - kept.at < (self.refresh_s if kept.good else self.retry_s)
        if kept is not None and fresh and kept.texts == (texts.points, texts.recent):
            return
        start = now - (params.points - 1) * params.period_s
        group.points = Job(
            first.endpoint, texts.points, first.timeout_s, (start, now, float(params.period_s))
        )
        group.recent = Job(first.endpoint, texts.recent, first.timeout_s)

    def _forget(self, now: float) -> None:
        for key, kept in list(self._kept.items()):
            if now - kept.at > 4 * self.refresh_s:
                del self._kept[key]
        for key, texts in list(self._texts.items()):
            if now - texts.used > 4 * self.refresh_s:
                del self._texts[key]
                self._seasons.pop(key, None)

    def finish(
        self, planned: Planned, answers: Mapping[Job, QueryResult | RangeResult], now: float
    ) -> dict[str, History]:
        """Each planned workload's History from the answers to `planned.jobs`."""
        out = dict(planned.none)
        for group in planned.groups:
            seasons = self._seasons_answer(group, answers, now)
            kept = self._ratio_answers(group, answers, now)
            for w in group.members:
                out[w.query.key] = self._history(w, group.params, seasons, kept)
        return out

    def _seasons_answer(
        self, group: _Group, answers: Mapping[Job, QueryResult | RangeResult], now: float
    ) -> _Parts | None:
        """This read's seasons answer, or the one kept (only answers are kept: a failure is
        asked again on the next read)."""
        if group.seasons is None:
            kept = self._seasons.get(group.key)
            return kept.parts if kept is not None else None
        answer: QueryResult = answers[group.seasons]  # type: ignore[assignment]
        self._note(group.seasons, answer, "seasons")
        parts = instant_parts(answer)
        if parts is None:
            self._seasons.pop(group.key, None)
        else:
            self._seasons[group.key] = _KeptSeasons(now, group.seasons.expr, parts)
        return parts

    def _ratio_answers(
        self, group: _Group, answers: Mapping[Job, QueryResult | RangeResult], now: float
    ) -> _Kept | None:
        if not group.ratios:
            return None
        if group.points is not None and group.recent is not None and group.points.span is not None:
            points: RangeResult = answers[group.points]  # type: ignore[assignment]
            recent: QueryResult = answers[group.recent]  # type: ignore[assignment]
            self._note(group.points, points, "ratio points")
            self._note(group.recent, recent, "recent ratio")
            good = not isinstance(points, QueryFailure) and not isinstance(recent, QueryFailure)
            texts = (group.points.expr, group.recent.expr)
            params = group.params
            per_point = range_parts(points, group.points.span[0], float(params.period_s), params.points)
            self._kept[group.key] = _Kept(now, per_point, instant_parts(recent), good, texts)
        return self._kept.get(group.key)

    @staticmethod
    def _history(w: Wanted, params: Params, seasons: _Parts | None, kept: _Kept | None) -> History:
        assert w.read is not None
        out = params.unknown()
        read = _Sought.of(w.read, w.query)
        season_list = tuple(
            Season(
                float(p),
                then=seasons.value(f"then:{p}", read),
                peak_up=seasons.value(f"up:{p}", read),
                peak_down=seasons.value(f"down:{p}", read),
            )
            if seasons is not None
            else Season(float(p))
            for p in params.seasons
        )
        ratios = out.ratios
        if kept is not None and w.write is not None and ratios is not None:
            recent, write = kept.recent, _Sought.of(w.write, w.query)
            ratios = RatioHistory(
                float(params.period_s),
                tuple(ratio(p, read, write, params.period_s) for p in kept.points)
                if kept.points is not None
                else ratios.points,
                float(params.shift_s),
                ratio(recent, read, write, params.shift_s, ":recent"),
                ratio(recent, read, write, params.shift_s, ":before"),
            )
        now_qps = seasons.value("now", read) if seasons is not None else None
        return History(out.horizon_up_s, out.horizon_down_s, season_list, ratios, now_qps)

    def _note(self, job: Job, answer: QueryResult | RangeResult, what: str) -> None:
        if isinstance(answer, QueryFailure):
            self._warn(job.endpoint, what, f"{answer.reason}: {answer.message}")
        elif (job.endpoint.url, what) in self._failing:
            self._failing.discard((job.endpoint.url, what))
            log.info("history query (%s) to %s answers again", what, job.endpoint.url)

    def _warn(self, endpoint: Endpoint, what: str, message: str) -> None:
        key = (endpoint.url, what)
        if key not in self._failing:
            self._failing.add(key)
            log.warning(
                "history query (%s) to %s failed, the history is unknown until it answers: %s",
                what,
                endpoint.url,
                message,
            )
