"""`PrometheusMetricsSource`: the MetricsSource the operator uses (see source.py for the contract).

One `read()` per interval for every workload the operator watches:

1. Each workload's five signals are resolved to a preset template, a custom query
   (`spec.metrics.queries`, which overrides the preset signal by signal) or an unknown reason.
2. Workloads that share a Prometheus (URL, token, CA, TLS mode), a query timeout and a rate
   window are asked each preset template ONCE, rendered with the union of their placeholders:
   the number of preset queries per interval does not grow with the number of workloads.
   What a batch of workloads renders is kept while its members' queries stay the same (a
   group's members ask again and again), so an unchanged group is not rendered again.
   Custom queries are per workload by nature (they name one workload's pods), so they are asked
   per workload; identical rendered queries are still asked once.
3. All queries run concurrently, at most `max_concurrency` at a time per Prometheus, each bounded
   by the workload's `spec.prometheus.timeout`; everything is async, so a slow Prometheus delays
   only its own workloads' readings and never the operator's event loop.
4. Each answer is split back per workload (`group.py`); anything missing is an unknown signal
   with a reason, never 0.
5. Then the history of the read load and of the read:write ratio (`history.py`, docs/history.md),
   from the same read and write templates and with the same grouping: one seasons query per
   group a minute, two ratio queries per group every 15 minutes; asked only of a Prometheus
   that answered the signal queries.

The operator asks per workload, on each workload's own tick; `share.py` turns those calls into
grouped reads of every workload it has seen, so the cost stays per group, not per workload.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from rwscaler.core.durations import parse_duration
from rwscaler.core.observation import Aggregation, Diagnostics, Signal, UnknownReason
from rwscaler.metrics.client import Endpoint, PrometheusClient, QueryFailure, QueryResult, RangeResult
from rwscaler.metrics.group import Indexed, Judge, Key, index, owner_keys
from rwscaler.metrics.history import HistoryReader, Job, Side, Wanted
from rwscaler.metrics.presets import template_for
from rwscaler.metrics.promql import (
    TemplateError,
    expansions,
    format_window,
    is_bare_selector,
    render,
    with_freshness,
)
from rwscaler.metrics.share import SharedReads, default_reuse_s
from rwscaler.metrics.signals import (
    DIAGNOSTIC_SIGNALS,
    PER_POD_SIGNALS,
    SCALAR_SIGNALS,
    Owner,
    SignalName,
    SignalTemplate,
)
from rwscaler.metrics.source import MetricsReading, WorkloadQuery

# Clients of a Prometheus no workload has used for this long are closed (a rotated token or a
# deleted workload must not keep a connection pool open forever).
_CLIENT_IDLE_S = 600.0


@dataclass(frozen=True, slots=True)
class Target:
    """How a workload's queries are sent; workloads with equal targets share grouped queries."""

    endpoint: Endpoint
    timeout_s: float
    window: str


@dataclass(frozen=True, slots=True)
class _Query:
    endpoint: Endpoint
    expr: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class _Ask:
    """How one signal of one workload is read from the answer to `query`."""

    query: _Query
    by: tuple[str, ...]
    owner: Owner | None  # None: a custom query (one workload's answer)
    aggregation: Aggregation
    hint: str = ""
    dated: bool = False  # the query carries a freshness part (see group.Indexed.dated)
    member: str | None = None  # a bundle member: its series carry this name (signals.bundle)


@dataclass(slots=True)
class _Pending:
    """What one workload waits for: per signal, a finished Signal or an ask."""

    query: WorkloadQuery
    staleness_s: float
    fixed: dict[SignalName, Signal] = field(default_factory=dict)
    asks: dict[SignalName, _Ask] = field(default_factory=dict)
    grouped: dict[SignalName, tuple[Target, SignalTemplate]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Batch:
    """A batch's pendings with their asks rendered (read, never changed, once made)."""

    queries: tuple[WorkloadQuery, ...]
    pendings: list[_Pending]
    grouped: int  # how many grouped queries they ask
    wanted: list[Wanted]  # what the history needs of each pending


@dataclass(frozen=True, slots=True)
class ReadStats:
    """What the last `read()` cost: for the benchmark and for the operator's logs.

    `queries` counts the signal queries (grouped + custom); `history_queries` the history
    queries sent along (history.py); `total_queries` both."""

    workloads: int
    queries: int
    grouped_queries: int
    custom_queries: int
    seconds: float
    history_queries: int = 0

    @property
    def total_queries(self) -> int:
        return self.queries + self.history_queries


class PrometheusMetricsSource:
    """Reads every workload's signals from Prometheus, one query per preset signal per group."""

    def __init__(
        self, max_concurrency: int = 8, min_rate_window_s: float = 60.0, reuse_s: float | None = None
    ) -> None:
        """`reuse_s`: how old a reading made for a group may be when another workload of the
        group asks (see share.py); None: half the workload's interval, at most 5 s; 0: never."""
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.max_concurrency = max_concurrency
        # The `${window}` of rate() is max(2 x the workload's interval, this): at least four
        # scrapes at the common 15s scrape interval, so a rate is never computed from one sample.
        self.min_rate_window_s = min_rate_window_s
        self._clients: dict[Endpoint, PrometheusClient] = {}
        self._last_used: dict[Endpoint, float] = {}
        self.last_stats: ReadStats | None = None
        self.queries_sent = 0  # signal queries
        # Failed queries (signals and history) by unknown-reason, since the start: the operator's
        # own metrics export them (rwscaler_prometheus_query_errors_total), read from the thread
        # that serves /metrics. Every key exists from the start, so that thread's copy never
        # meets a key being added (only values change).
        self.query_errors: Counter[str] = Counter({reason.value: 0 for reason in UnknownReason})
        self.history_queries_sent = 0
        self._history = HistoryReader()
        self._plans: dict[tuple[str, ...], _Batch] = {}  # _planned's, the most recently used last
        self._shared = SharedReads(
            self._read_all,
            self.target_of,
            default_reuse_s if reuse_s is None else (lambda _q: reuse_s),
        )

    # ---- planning ----------------------------------------------------------------------
    def target_of(self, q: WorkloadQuery) -> Target:
        prom = q.spec.prometheus
        if prom is None:  # the operator fills in its default before a query is made
            raise ValueError(f"{q.namespace}/{q.name}: no Prometheus configured")
        endpoint = Endpoint(prom.url, q.bearer_token, q.ca_pem, prom.insecureSkipVerify)
        window_s = max(2.0 * q.spec.behavior.intervalSeconds, self.min_rate_window_s)
        return Target(endpoint, parse_duration(prom.timeout), format_window(window_s))

    def _plan(
        self, queries: Sequence[WorkloadQuery]
    ) -> tuple[list[_Pending], dict[tuple[Target, SignalTemplate], list[WorkloadQuery]]]:
        pendings: list[_Pending] = []
        groups: dict[tuple[Target, SignalTemplate], list[WorkloadQuery]] = {}
        for q in queries:
            target = self.target_of(q)
            pending = _Pending(q, parse_duration(q.spec.metrics.staleness))
            pendings.append(pending)
            overrides = q.spec.metrics.queries
            for signal in SignalName:
                if (
                    signal is SignalName.REPLICATION_LAG_BYTES
                    and q.spec.objectives.maxReplicationLagBytes is None
                ):
                    # Asked only when it is used: one query less per interval for everybody else.
                    pending.fixed[signal] = Signal.unknown(
                        UnknownReason.NOT_CONFIGURED, f"{signal}: no objectives.maxReplicationLagBytes"
                    )
                    continue
                # The key metrics have no override (spec.metrics.queries names the five signals).
                custom = getattr(overrides, signal.value, None) if overrides is not None else None
                if custom is not None:
                    self._plan_custom(pending, target, signal, custom)
                    continue
                template = template_for(q.spec.metrics.preset, signal, q)
                if isinstance(template, Signal):
                    pending.fixed[signal] = template
                else:
                    pending.grouped[signal] = (target, template)
                    groups.setdefault((target, template), []).append(q)
        return pendings, groups

    def _plan_custom(self, pending: _Pending, target: Target, signal: SignalName, template: str) -> None:
        try:
            expr = render(template, [pending.query], target.window)
        except TemplateError as err:
            pending.fixed[signal] = Signal.unknown(UnknownReason.QUERY_ERROR, f"{signal}: {err}")
            return
        dated = is_bare_selector(expr)
        if dated:
            # Only a plain selector's samples can be dated with timestamp(); for any other
            # expression Prometheus' own staleness (5m lookback, stale markers) is what applies.
            expr = with_freshness(expr, f"timestamp({expr})")
        aggregation = Aggregation.PERCENTILE
        if signal in (SignalName.READ_LATENCY, SignalName.WRITE_LATENCY) and "quantile" not in template:
            # No histogram_quantile, no summary quantile label: the query cannot be a percentile.
            aggregation = Aggregation.AVERAGE
        by = ("pod",) if signal in PER_POD_SIGNALS else ()
        pending.asks[signal] = _Ask(
            _Query(target.endpoint, expr, target.timeout_s), by, None, aggregation, dated=dated
        )

    @staticmethod
    def _render_groups(
        pendings: list[_Pending], groups: dict[tuple[Target, SignalTemplate], list[WorkloadQuery]]
    ) -> int:
        """Render each group's query once and hand it to every member; returns how many."""
        rendered: dict[tuple[Target, SignalTemplate], _Query | Signal] = {}
        # The templates of one target mostly share their members: expand each member set once.
        expanded: dict[tuple[Target, tuple[str, ...]], dict[str, str]] = {}
        # A bundle's templates share one expression (each reads its own member of the answer):
        # render that text once per member set, not once per template.
        texts: dict[tuple[str, str | None, tuple[Target, tuple[str, ...]]], str] = {}
        for (target, template), members in groups.items():
            member_keys = (target, tuple(q.key for q in members))
            values = expanded.get(member_keys)
            if values is None:
                values = expanded[member_keys] = expansions(members, target.window)
            try:
                text_key = (template.expr, template.fresh, member_keys)
                expr = texts.get(text_key)
                if expr is None:
                    expr = render(template.expr, members, target.window, values)
                    if template.fresh is not None:
                        expr = with_freshness(expr, render(template.fresh, members, target.window, values))
                    texts[text_key] = expr
                rendered[(target, template)] = _Query(target.endpoint, expr, target.timeout_s)
            except TemplateError as err:  # a preset bug, not the user's: still never raise
                rendered[(target, template)] = Signal.unknown(UnknownReason.QUERY_ERROR, str(err))
        for pending in pendings:
            for signal, key in pending.grouped.items():
                _target, template = key
                query = rendered[key]
                if isinstance(query, Signal):
                    pending.fixed[signal] = Signal.unknown(
                        UnknownReason.QUERY_ERROR, f"{signal}: {query.message}"
                    )
                else:
                    pending.asks[signal] = _Ask(
                        query,
                        template.by,
                        template.owner,
                        template.aggregation,
                        template.hint,
                        dated=template.fresh is not None,
                        member=template.member,
                    )
        # A bundle's members render to the same query, asked once: count it once.
        return len({query for query in rendered.values() if isinstance(query, _Query)})

    # ---- running -----------------------------------------------------------------------
    def _client(self, endpoint: Endpoint, now: float) -> PrometheusClient:
        client = self._clients.get(endpoint)
        if client is None:
            client = PrometheusClient(endpoint, asyncio.Semaphore(self.max_concurrency))
            self._clients[endpoint] = client
        self._last_used[endpoint] = now
        return client

    async def read(self, queries: Sequence[WorkloadQuery], now: float) -> dict[str, MetricsReading]:
        """One reading per query key (the MetricsSource contract), shared across calls (share.py)."""
        return await self._shared.read(queries, now)

    def _planned(self, queries: Sequence[WorkloadQuery]) -> _Batch:
        """`_plan` then `_render_groups`, or what they made for the same queries before.

        A group's members ask again and again with the same specs and pods: rendering their
        queries anew on every read was about a third of a grouped read's CPU at 1,000
        workloads. Any change in any member's query (its spec, its pods, its token) renders
        the batch again."""
        batch = tuple(sorted(queries, key=lambda q: q.key))  # the same members, the same order
        keys = tuple(q.key for q in batch)
        kept = self._plans.pop(keys, None)
        if kept is None or kept.queries != batch:
            pendings, groups = self._plan(batch)
            grouped = self._render_groups(pendings, groups)
            kept = _Batch(batch, pendings, grouped, [self._wanted(p) for p in pendings])
        self._plans[keys] = kept  # the most recently used last
        # Bounded by members, not by batches: the batches kept hold at most twice the largest
        # one's members (a churning fleet's full batches replace each other; workloads with
        # custom queries read alone, each a batch of one).
        budget = 2 * max(len(b.queries) for b in self._plans.values())
        while sum(len(b.queries) for b in self._plans.values()) > budget:
            del self._plans[next(iter(self._plans))]
        return kept

    async def _read_all(self, queries: Sequence[WorkloadQuery], now: float) -> dict[str, MetricsReading]:
        """Read exactly these workloads now: each preset signal once per group."""
        started = time.monotonic()
        batch = self._planned(queries)
        pendings, grouped = batch.pendings, batch.grouped
        # Identical queries (a group's, or two workloads' identical custom queries) are asked once.
        ordered = list(dict.fromkeys(ask.query for p in pendings for ask in p.asks.values()))
        results = await asyncio.gather(
            *(self._client(q.endpoint, now).query(q.expr, q.timeout_s) for q in ordered)
        )
        answers = dict(zip(ordered, results, strict=True))
        # The history is asked after the signals, and only of a Prometheus that answered them:
        # one that is down or hung would only make the tick wait for its timeout twice.
        planned = self._history.plan(batch.wanted, now)
        down = _silent_endpoints(answers)
        jobs = [job for job in planned.jobs if job.endpoint not in down]
        job_results = await asyncio.gather(*(self._run(job, now) for job in jobs))
        job_answers: dict[Job, QueryResult | RangeResult] = dict(zip(jobs, job_results, strict=True))
        for job in planned.jobs:
            if job.endpoint in down:
                job_answers[job] = down[job.endpoint]
        histories = self._history.finish(planned, job_answers, now)
        for answer in (*answers.values(), *job_results):
            if isinstance(answer, QueryFailure):
                self.query_errors[answer.reason.value] += 1
        self.queries_sent += len(ordered)
        self.history_queries_sent += len(jobs)
        # Index each answer once for all the workloads that share it (not once per workload:
        # that would make splitting quadratic in the number of workloads).
        indexes: dict[tuple[_Query, tuple[str, ...]], Indexed] = {}
        readings = {
            p.query.key: replace(_reading(p, answers, indexes, now), history=histories[p.query.key])
            for p in pendings
        }
        self.last_stats = ReadStats(
            len(queries),
            len(ordered),
            grouped,
            len(ordered) - grouped,
            time.monotonic() - started,
            len(jobs),
        )
        await self._close_idle(now)
        return readings

    def _wanted(self, p: _Pending) -> Wanted:
        """What the history needs of a workload: its read and write QPS templates."""
        target = self.target_of(p.query)

        def side(signal: SignalName) -> Side | None:
            grouped = p.grouped.get(signal)
            if grouped is not None:
                template = grouped[1]
                return Side(template.expr, template.by, template.owner)
            overrides = p.query.spec.metrics.queries
            custom = getattr(overrides, signal.value) if overrides is not None else None
            return Side(custom) if custom is not None else None

        return Wanted(
            p.query,
            target.endpoint,
            target.timeout_s,
            parse_duration(target.window),
            side(SignalName.READ_QPS),
            side(SignalName.WRITE_QPS),
        )

    async def _run(self, job: Job, now: float) -> QueryResult | RangeResult:
        client = self._client(job.endpoint, now)
        if job.span is None:
            return await client.query(job.expr, job.timeout_s)
        start, end, step = job.span
        return await client.query_range(job.expr, start, end, step, job.timeout_s)

    async def _close_idle(self, now: float) -> None:
        for endpoint, used in list(self._last_used.items()):
            if now - used > _CLIENT_IDLE_S:
                client = self._clients.pop(endpoint)
                del self._last_used[endpoint]
                await client.aclose()

    async def close(self) -> None:
        self._plans.clear()
        clients, self._clients = list(self._clients.values()), {}
        self._last_used.clear()
        for client in clients:
            await client.aclose()


def _silent_endpoints(answers: dict[_Query, QueryResult]) -> dict[Endpoint, QueryFailure]:
    """The Prometheus servers none of whose signal queries got an answer (unreachable, timeout)."""
    silent: dict[Endpoint, QueryFailure] = {}
    answered: set[Endpoint] = set()
    for query, answer in answers.items():
        if isinstance(answer, QueryFailure) and answer.reason in (
            UnknownReason.UNREACHABLE,
            UnknownReason.TIMEOUT,
        ):
            silent.setdefault(
                query.endpoint,
                QueryFailure(answer.reason, f"not asked, the signal queries failed: {answer.message}"),
            )
        else:
            answered.add(query.endpoint)
    return {endpoint: failure for endpoint, failure in silent.items() if endpoint not in answered}


def _reading(
    p: _Pending,
    answers: dict[_Query, QueryResult],
    indexes: dict[tuple[_Query, tuple[str, ...]], Indexed],
    now: float,
) -> MetricsReading:
    q = p.query
    scalars: dict[SignalName, Signal] = {}
    per_pod: dict[SignalName, dict[str, Signal]] = {}
    keys_of: dict[Owner, list[Key]] = {}  # several signals share an owner: its keys once

    def owned(owner: Owner) -> list[Key]:
        keys = keys_of.get(owner)
        if keys is None:
            keys = keys_of[owner] = owner_keys(owner, q)
        return keys

    for signal in SignalName:
        pods = _pods_of(signal, q)
        result: Signal | dict[str, Signal]
        ask = p.asks.get(signal)
        if ask is None:
            result = p.fixed[signal]
        else:
            judge = Judge(signal, now, p.staleness_s, ask.aggregation, ask.hint)
            answer = answers[ask.query]
            if isinstance(answer, QueryFailure):
                result = judge.failure(answer)
            else:
                indexed = indexes.get((ask.query, ask.by))
                if indexed is None:
                    indexed = indexes[(ask.query, ask.by)] = index(answer, ask.by, ask.dated)
                if pods is not None:
                    keys = [(pod,) for pod in pods] if ask.owner is None else owned(ask.owner)
                    result = {pod: judge.one(indexed, key) for pod, key in zip(pods, keys, strict=True)}
                elif ask.owner is None:
                    result = judge.one(indexed, ())
                else:
                    keys = owned(ask.owner)
                    if ask.member is not None:
                        keys = [(*key, ask.member) for key in keys]
                    result = judge.total(indexed, keys)
        if isinstance(result, dict):
            per_pod[signal] = result
        elif pods is not None:
            # One unknown for the whole signal (query failed, not configured): every pod's.
            per_pod[signal] = {pod: result for pod in pods}
        else:
            scalars[signal] = result
    read_qps, write_qps, read_p99, write_p99 = (scalars[s] for s in SCALAR_SIGNALS)
    diagnostics = Diagnostics(*(scalars[s] for s in DIAGNOSTIC_SIGNALS))
    return MetricsReading(
        read_qps,
        write_qps,
        read_p99,
        write_p99,
        per_pod[SignalName.REPLICATION_LAG],
        per_pod[SignalName.IS_REPLICA],
        replica_lag_bytes=per_pod[SignalName.REPLICATION_LAG_BYTES],
        diagnostics=diagnostics,
    )


def _pods_of(signal: SignalName, q: WorkloadQuery) -> tuple[str, ...] | None:
    """The pods a per-pod signal has a value for (lag: the replicas; the role: every pod); None
    for a signal with one value per workload."""
    if signal in (SignalName.REPLICATION_LAG, SignalName.REPLICATION_LAG_BYTES):
        return q.replica_pods
    if signal is SignalName.IS_REPLICA:
        return q.pods
    return None
