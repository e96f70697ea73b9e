"""The presets: for each exporter family, the PromQL template of every signal.

Called by `prometheus.py` through `template_for(preset, signal, workload)`, which answers a
`SignalTemplate` (asked once per group of workloads) or an unknown `Signal` when the preset
cannot give that signal for that workload. The reference for users, with every metric name and
the reasoning behind each formula, is docs/metrics.md; keep the two in step.

Templates are written as for one workload; `promql.render` expands each placeholder to the
alternation over a whole group. So every template selects with `=~` and aggregates `by` the
labels its `Owner` needs to split the answer again:

- pooler signals `by (namespace, database)`: the pooler's read and write databases;
- per-server signals `by (namespace, statefulset)`, where `statefulset` is cut from the pod
  name (`orders-pg-replica-3` -> `orders-pg-replica`, CloudNativePG's `orders-2` -> `orders`)
  with label_replace, after the selector has picked the pods by role (`${primary_pods}` are
  the pods that are primary now, whatever set they are in);
- lag `by (namespace, pod)`, one value per replica; the role metric `by (namespace, pod)`, one
  value per pod (1 a replica, 0 the primary).

Where an exporter has no histogram, a latency is an average (duration counter / query counter)
and the template says `Aggregation.AVERAGE`, which status shows. A template may also mark its
own series with the label `rwscaler_aggregation="average"` when it falls back from a histogram
to an average with `or` (the mysql preset does).
"""

from __future__ import annotations

from collections.abc import Callable

from rwscaler.core.observation import Aggregation, Signal, UnknownReason
from rwscaler.core.spec import MetricsPreset
from rwscaler.metrics.promql import AGGREGATION_LABEL
from rwscaler.metrics.signals import SCALAR_SIGNALS, Owner, SignalName, SignalTemplate, bundle
from rwscaler.metrics.source import WorkloadQuery

Template = SignalTemplate | Signal

W = "${window}"
NS = 'namespace=~"${namespace}"'
# Databases where monitoring agents (CloudNativePG's own queries), not applications, run.
NOT_APP_DBS = 'datname!~"postgres|template0|template1"'


def _sel(*matchers: str) -> str:
    return "{" + ", ".join(matchers) + "}"


def _by_set(expr: str) -> str:
    """Label each series with the StatefulSet its pod belongs to (pod name minus `-<ordinal>`)."""
    return f'label_replace({expr}, "statefulset", "$1", "pod", "(.+)-[0-9]+")'


def _rate_by_set(metric: str, selector: str) -> str:
    return f"sum by (namespace, statefulset) ({_by_set(f'rate({metric}{selector}[{W}])')})"


def _fresh_by_set(metric: str, selector: str) -> str:
    return f"min by (namespace, statefulset) ({_by_set(f'timestamp({metric}{selector})')})"


# ---- PgBouncer (postgres and cnpg presets, when the workload has a PgBouncer pooler) -------------
# Four exporter generations name the same SHOW STATS columns differently; each template asks
# all of them with `or`, so whichever the cluster runs answers (detected per series, never configured):
#   Spreaker prometheus-pgbouncer-exporter (PyPI):  pgbouncer_stats_queries_total,
#       pgbouncer_stats_queries_duration_microseconds_total
#   prometheus-community pgbouncer_exporter (Go) 0.11+, reading SHOW STATS_TOTALS:
#       pgbouncer_stats_totals_queries_pooled_total, pgbouncer_stats_totals_queries_duration_seconds_total
#   the same Go exporter 0.4-0.10:  pgbouncer_stats_queries_pooled_total,
#       pgbouncer_stats_queries_duration_seconds_total
#   CloudNativePG Pooler:  cnpg_pgbouncer_stats_total_query_count, _total_query_time (µs)
_PGB_FLAVOURS = (
    # (queries counter, query time counter, seconds per unit)
    ("pgbouncer_stats_queries_total", "pgbouncer_stats_queries_duration_microseconds_total", "1e-6"),
    (
        "pgbouncer_stats_totals_queries_pooled_total",
        "pgbouncer_stats_totals_queries_duration_seconds_total",
        "1",
    ),
    ("pgbouncer_stats_queries_pooled_total", "pgbouncer_stats_queries_duration_seconds_total", "1"),
    ("cnpg_pgbouncer_stats_total_query_count", "cnpg_pgbouncer_stats_total_query_time", "1e-6"),
)
_PGB_BY = ("namespace", "database")
_PGB_HINT = (
    "no PgBouncer exporter series for this database: the exporter is not scraped or is not one of "
    "those docs/metrics.md names (Debian's prometheus-pgbouncer-exporter cannot read PgBouncer >= 1.8), "
    "or the pooler has not served this database yet"
)


def _pgb_sum(metric: str, selector: str) -> str:
    return f"sum by (namespace, database) (rate({metric}{selector}[{W}]))"


def _pgb_fresh(selector: str) -> str:
    stamps = " or ".join(f"timestamp({queries}{selector})" for queries, _, _ in _PGB_FLAVOURS)
    return f"min by (namespace, database) ({stamps})"


def _pgb_qps(database: str, owner: Owner) -> SignalTemplate:
    selector = _sel(NS, f'database=~"${{{database}}}"')
    expr = " or ".join(_pgb_sum(queries, selector) for queries, _, _ in _PGB_FLAVOURS)
    return SignalTemplate(expr, _PGB_BY, owner, _pgb_fresh(selector), hint=_PGB_HINT)


def _pgb_latency(database: str, owner: Owner) -> SignalTemplate:
    # Average client-side latency of a query through the pooler: PgBouncer's query time runs
    # from the client's query to the server's answer, so it already holds the time the client
    # waited for a server connection (measured on PgBouncer 1.18 with 16 clients on a pool of 2:
    # 167 ms query time per query = 146 ms wait + 20 ms on the server). Pool saturation is a
    # capacity problem too, so the wait belongs in the latency; it is not added twice.
    # PgBouncer keeps no histogram, so this is an average, not a p99 (flagged AVERAGE).
    # No queries in the window makes it 0/0 = NaN: unknown, never 0.
    selector = _sel(NS, f'database=~"${{{database}}}"')
    parts = [
        f"({_pgb_sum(query_time, selector)} * {unit}) / {_pgb_sum(queries, selector)}"
        for queries, query_time, unit in _PGB_FLAVOURS
    ]
    return SignalTemplate(
        " or ".join(parts), _PGB_BY, owner, _pgb_fresh(selector), Aggregation.AVERAGE, _PGB_HINT
    )


# The pools' own state, averaged over the window (SHOW POOLS: sv_active, cl_waiting): every Go and
# PyPI exporter generation names them alike; CloudNativePG's Pooler after the columns.
_PGB_POOL_HINT = "no PgBouncer pool series for this database (SHOW POOLS through the exporter)"


def _pgb_pool(metrics: tuple[str, str], database: str) -> str:
    selector = _sel(NS, f'database=~"${{{database}}}"')
    return " or ".join(
        f"sum by (namespace, database) (avg_over_time({metric}{selector}[{W}]))" for metric in metrics
    )


_ACTIVE = ("pgbouncer_pools_server_active_connections", "cnpg_pgbouncer_pools_sv_active")
_WAITING = ("pgbouncer_pools_client_waiting_connections", "cnpg_pgbouncer_pools_cl_waiting")
# One query for the four (signals.bundle): they change slowly and share their labels.
_PGB_POOLS = bundle(
    {
        SignalName.READ_POOL_ACTIVE: (
            _pgb_pool(_ACTIVE, "read_database"),
            Owner.READ_DATABASE,
            _PGB_POOL_HINT,
        ),
        SignalName.WRITE_POOL_ACTIVE: (
            _pgb_pool(_ACTIVE, "write_database"),
            Owner.WRITE_DATABASE,
            _PGB_POOL_HINT,
        ),
        SignalName.READ_POOL_WAITING: (
            _pgb_pool(_WAITING, "read_database"),
            Owner.READ_DATABASE,
            _PGB_POOL_HINT,
        ),
        SignalName.WRITE_POOL_WAITING: (
            _pgb_pool(_WAITING, "write_database"),
            Owner.WRITE_DATABASE,
            _PGB_POOL_HINT,
        ),
    },
    _PGB_BY,
)

_PGB = {
    **_PGB_POOLS,
    SignalName.READ_QPS: _pgb_qps("read_database", Owner.READ_DATABASE),
    SignalName.WRITE_QPS: _pgb_qps("write_database", Owner.WRITE_DATABASE),
    SignalName.READ_LATENCY: _pgb_latency("read_database", Owner.READ_DATABASE),
    SignalName.WRITE_LATENCY: _pgb_latency("write_database", Owner.WRITE_DATABASE),
}


# ---- postgres: postgres_exporter with rwscaler's extension queries ---------------------------------
# Lag, per replica pod, in seconds: the largest of four pieces of evidence (docs/metrics.md):
#  1. the primary's view, pg_stat_replication.replay_lag of the standby whose application_name is
#     the pod's name: PostgreSQL's lag tracker, right after an idle period (it times the WAL
#     written now), growing while replay is stuck or slow, NULL (0) when caught up;
#  2. while the WAL receiver streams: the replica's classic formula pg_replica_replay_lag_seconds
#     (0 when all received WAL is replayed, else the age of the last replayed commit), CONFIRMED
#     by the sample before: the smaller of the last two samples. A replica replaying the first WAL
#     after an idle period reads the whole idle time for a fraction of a second; two samples in a
#     row never both land in that moment, a replica that is really behind stays behind;
#  3. while the WAL receiver does not stream (primary gone, stream broken, slot lost): the age of
#     the last replayed commit, pg_replica_last_replay_age_seconds, which keeps growing: the
#     replica is at most that far behind and rwscaler cannot tell less, so a broken stream never
#     reads 0;
#  4. a silent partition, which the receiver notices only at wal_receiver_timeout: the seconds
#     since the replica last heard from the primary (pg_wal_receiver_last_msg_receipt_age_seconds),
#     counted only while the primary holds WAL that standby has not flushed, in its last two
#     samples (the brake only acts while the primary writes: on an idle primary the receipt age
#     grows for nothing).
# "The last two samples" of a gauge g is `g - idelta(g[w])`, the sample before the last one.
_REPLICA = _sel(NS, 'pod=~"${replica_pods}"')
# Right-hand sides of `and on (namespace, pod)` need no pod matcher: the left side already
# picked the pods, and every extra regex over all replica pods costs Prometheus time.
_NS_ONLY = _sel(NS)
# The primary's pg_stat_replication rows, one per standby, named by application_name.
_STANDBY = _sel(NS, 'application_name=~"${replica_pods}"')


def _previous(metric: str, selector: str) -> str:
    """The sample before the last one of a gauge (absent while it has only one)."""
    return f"({metric}{selector} - idelta({metric}{selector}[{W}]))"


def _confirmed(metric: str, selector: str) -> str:
    """The smaller of the gauge's last two samples: a value that held for two scrapes."""
    return f"({metric}{selector} - clamp_min(idelta({metric}{selector}[{W}]), 0))"


def _held_positive(metric: str, selector: str) -> str:
    """The series whose last two samples are both above 0."""
    return f"(({metric}{selector} > 0) and ({_previous(metric, selector)} > 0))"


def _as_pod(expr: str) -> str:
    """A primary-side per-standby expression, labelled with the standby's pod name."""
    return f'label_replace({expr}, "pod", "$1", "application_name", "(.+)")'


def _evidence(name: str, expr: str) -> str:
    """A piece of lag evidence, labelled apart: `or` keeps only the first of two series with
    the same labels, and the replica's own pieces all carry its target's labels."""
    return f'label_replace({expr}, "lag_evidence", "{name}", "", "")'


# The silent partition's brake: the primary held WAL this standby had not flushed in its last two
# samples, and the standby's flush position did not move between them (a healthy standby, even
# in a long write, flushes within milliseconds).
_FLUSH_STUCK = (
    f"({_held_positive('pg_standby_flush_lag_bytes', _STANDBY)}"
    f" and (idelta(pg_standby_flush_lsn_bytes{_STANDBY}[{W}]) == 0))"
)
_PG_LAG = SignalTemplate(
    "max by (namespace, pod) ("
    + " or ".join(
        (
            _evidence("primary_view", _as_pod(f"pg_standby_replay_lag_seconds{_STANDBY}")),
            _evidence(
                "replay",
                f"{_confirmed('pg_replica_replay_lag_seconds', _REPLICA)}"
                f" and on (namespace, pod) (pg_wal_receiver_streaming{_NS_ONLY} == 1)",
            ),
            _evidence(
                "stream_broken",
                f"pg_replica_last_replay_age_seconds{_REPLICA}"
                f" and on (namespace, pod) (pg_wal_receiver_streaming{_NS_ONLY} == 0)",
            ),
            _evidence(
                "silent_partition",
                f"pg_wal_receiver_last_msg_receipt_age_seconds{_REPLICA}"
                f" and on (namespace, pod) {_as_pod(_FLUSH_STUCK)}",
            ),
        )
    )
    + ")",
    ("namespace", "pod"),
    Owner.REPLICA_PODS,
    "min by (namespace, pod) ("
    f"timestamp(pg_replica_replay_lag_seconds{_REPLICA})"
    f' or label_replace(timestamp(pg_wal_receiver_streaming{_NS_ONLY}), "m", "streaming", "", ""))',
    hint="needs postgres_exporter with rwscaler's extension queries (pg_replica, pg_wal_receiver)",
)
# Lag in bytes: WAL the primary has written and the standby has not replayed (the primary's
# view), or WAL the replica has received and not replayed (its own view), whichever is larger.
# On an idle primary both are 0 once the standby reports its replay position.
_PG_LAG_BYTES = SignalTemplate(
    "max by (namespace, pod) ("
    f"{_as_pod(f'pg_standby_replay_lag_bytes{_STANDBY}')}"
    f" or pg_replica_receive_replay_lag_bytes{_REPLICA})",
    ("namespace", "pod"),
    Owner.REPLICA_PODS,
    f"min by (namespace, pod) (timestamp(pg_replica_receive_replay_lag_bytes{_REPLICA}))",
    hint="needs postgres_exporter with rwscaler's extension queries (pg_replica, pg_standby)",
)

# Without a PgBouncer pooler the sides are told apart by statement kind, from the pg_statements
# extension query (one series per pg_stat_statements entry, labelled with its kind, plus a zero
# series per kind): the rate of each series, then summed, so an evicted or reset entry is never
# a spike. Reads on every server, writes on the primary; latency is execution time per call (an
# average) on the servers that serve reads (the replicas, or the primary when there are none).
_STMT_HINT = "needs postgres_exporter with rwscaler's extension query pg_statements (pg_stat_statements)"


def _stmt_selector(pods: str, kind: str) -> str:
    # No database filter: the extension query already leaves out the exporter's own statements.
    return _sel(NS, f'pod=~"${{{pods}}}"', f'kind="{kind}"')


def _stmt_qps(pods: str, kind: str, owner: Owner) -> SignalTemplate:
    selector = _stmt_selector(pods, kind)
    return SignalTemplate(
        _rate_by_set("pg_statements_calls_total", selector),
        ("namespace", "statefulset"),
        owner,
        _fresh_by_set("pg_statements_calls_total", selector),
        hint=_STMT_HINT,
    )


def _stmt_latency(pods: str, kind: str, owner: Owner) -> SignalTemplate:
    selector = _stmt_selector(pods, kind)
    return SignalTemplate(
        f"{_rate_by_set('pg_statements_exec_seconds_total', selector)}"
        f" / {_rate_by_set('pg_statements_calls_total', selector)}",
        ("namespace", "statefulset"),
        owner,
        _fresh_by_set("pg_statements_calls_total", selector),
        Aggregation.AVERAGE,
        _STMT_HINT,
    )


_PG_DIRECT = {
    SignalName.READ_QPS: _stmt_qps("pods", "read", Owner.ALL_SETS),
    SignalName.WRITE_QPS: _stmt_qps("primary_pods", "write", Owner.PRIMARY_SET),
    SignalName.READ_LATENCY: _stmt_latency("read_pods", "read", Owner.READ_SET),
    SignalName.WRITE_LATENCY: _stmt_latency("primary_pods", "write", Owner.PRIMARY_SET),
}


# ---- the key metrics beyond QPS and latency (core/diagnosis.py, docs/diagnosis.md) -----------------
_BLOCK_BYTES = 8192  # PostgreSQL's block size (a compile-time constant, 8 KiB in every distribution)


def _set_sum(expr_of: Callable[[str], str], metrics: tuple[str, ...], selector: str) -> str:
    """Per metric, sum by (namespace, statefulset) of `expr_of(metric + selector)` over the pods; added."""
    return " + ".join(
        f"sum by (namespace, statefulset) ({_by_set(expr_of(f'{m}{selector}'))})" for m in metrics
    )


_SET_BY = ("namespace", "statefulset")


def _rate(series: str) -> str:
    return f"rate({series}[{W}])"


def _avg(series: str) -> str:
    return f"avg_over_time({series}[{W}])"


def _blocks_read_bytes(prefix: str, pods: str) -> str:
    # Blocks the queries touched (from shared buffers or disk) on the read servers, x 8 KiB:
    # the bytes scanned. The monitoring databases are left out.
    selector = _sel(NS, f'pod=~"${{{pods}}}"', NOT_APP_DBS)
    return f"({_set_sum(_rate, (f'{prefix}blks_hit', f'{prefix}blks_read'), selector)}) * {_BLOCK_BYTES}"


_PRIMARY = _sel(NS, 'pod=~"${primary_pods}"')
_PRIMARY_APP_DBS = _sel(NS, 'pod=~"${primary_pods}"', NOT_APP_DBS)
_PG_EXTENSION_HINT = "needs rwscaler's extension query {} on the primary"
# One query for all seven (signals.bundle): they change slowly and share their labels.
_PG_DIAGNOSTICS = bundle(
    {
        SignalName.READ_BYTES: (
            _blocks_read_bytes("pg_stat_database_", "read_pods"),
            Owner.READ_SET,
            "no pg_stat_database series (postgres_exporter)",
        ),
        # WAL written by the primary per second: the slope of its WAL insert position.
        SignalName.WRITE_BYTES: (
            f"sum by (namespace, statefulset) ({_by_set(f'deriv(pg_replica_wal_position_bytes{_PRIMARY}[{W}])')})",
            Owner.PRIMARY_SET,
            _PG_EXTENSION_HINT.format("pg_replica"),
        ),
        # Execution time per second of each side's statements (pg_stat_statements): the CPU split.
        SignalName.READ_CPU: (
            _rate_by_set("pg_statements_exec_seconds_total", _stmt_selector("pods", "read")),
            Owner.ALL_SETS,
            _STMT_HINT,
        ),
        SignalName.WRITE_CPU: (
            _rate_by_set("pg_statements_exec_seconds_total", _stmt_selector("primary_pods", "write")),
            Owner.PRIMARY_SET,
            _STMT_HINT,
        ),
        SignalName.LOCK_WAITS: (
            _set_sum(_avg, ("pg_lock_waits_sessions",), _PRIMARY),
            Owner.PRIMARY_SET,
            _PG_EXTENSION_HINT.format("pg_lock_waits"),
        ),
        SignalName.DEADLOCKS: (
            _set_sum(_rate, ("pg_stat_database_deadlocks",), _PRIMARY_APP_DBS),
            Owner.PRIMARY_SET,
            "no pg_stat_database_deadlocks series for the primary (postgres_exporter)",
        ),
        SignalName.ROWS_PER_WRITE: (
            f"{_rate_by_set('pg_statements_rows_total', _stmt_selector('primary_pods', 'write'))}"
            f" / {_rate_by_set('pg_statements_calls_total', _stmt_selector('primary_pods', 'write'))}",
            Owner.PRIMARY_SET,
            _STMT_HINT,
        ),
    },
    _SET_BY,
)
_POOL_SIGNALS = (
    SignalName.READ_POOL_ACTIVE,
    SignalName.WRITE_POOL_ACTIVE,
    SignalName.READ_POOL_WAITING,
    SignalName.WRITE_POOL_WAITING,
)


def _pool_signal(signal: SignalName, q: WorkloadQuery) -> Template:
    if q.spec.pooler.pgbouncer is None:
        return _not_configured(signal, "the pools are read from PgBouncer (spec.pooler.pgbouncer)")
    return _PGB[signal]


def _role(metric: str, exporter: str) -> SignalTemplate:
    """The role metric, one value per pod: 1 a replica (in recovery, read-only), 0 the primary."""
    selector = _sel(NS, 'pod=~"${pods}"')
    return SignalTemplate(
        f"max by (namespace, pod) ({metric}{selector})",
        ("namespace", "pod"),
        Owner.ALL_PODS,
        f"min by (namespace, pod) (timestamp({metric}{selector}))",
        hint=f"no {metric} series for this pod ({exporter})",
    )


# postgres_exporter's default replication collector: pg_is_in_recovery() as 1 / 0.
_PG_ROLE = _role("pg_replication_is_replica", "postgres_exporter's replication collector")


def _postgres(signal: SignalName, q: WorkloadQuery) -> Template:
    if signal is SignalName.REPLICATION_LAG:
        return _PG_LAG
    if signal is SignalName.REPLICATION_LAG_BYTES:
        return _PG_LAG_BYTES
    if signal is SignalName.IS_REPLICA:
        return _PG_ROLE
    if signal in _POOL_SIGNALS:
        return _pool_signal(signal, q)
    if signal in _PG_DIAGNOSTICS:
        return _PG_DIAGNOSTICS[signal]
    if q.spec.pooler.pgbouncer is not None:
        return _PGB[signal]
    return _PG_DIRECT[signal]


# ---- cnpg: CloudNativePG's instance manager metrics (default monitoring queries) --------------------
# Pods of a Cluster are <cluster>-<serial>, so `statefulset` (the pod name minus its serial) is
# the Cluster's name for every pod. Which pod is the primary comes from its role (label and
# cnpg_pg_replication_in_recovery), never from the pod name.
_CNPG_LAG = SignalTemplate(
    # cnpg_pg_replication_lag is the classic formula: 0 when all received WAL is replayed, which
    # also reads 0 when the stream is broken. So it counts only while the WAL receiver is up; a
    # replica whose receiver is down has no lag series at all: unknown, out of the read pool.
    # Like the postgres preset's, it is confirmed by the sample before (the idle false alarm),
    # and the primary's pg_stat_replication view adds the standby that is slow to receive.
    "max by (namespace, pod) ("
    f"({_confirmed('cnpg_pg_replication_lag', _REPLICA)}"
    f" and on (namespace, pod) (cnpg_pg_replication_is_wal_receiver_up{_NS_ONLY} == 1))"
    f" or {_as_pod(f'cnpg_pg_stat_replication_replay_lag_seconds{_STANDBY}')}"
    ")",
    ("namespace", "pod"),
    Owner.REPLICA_PODS,
    f"min by (namespace, pod) (timestamp(cnpg_pg_replication_lag{_REPLICA}))",
    hint="no cnpg_pg_replication_lag series, or the replica's WAL receiver is down",
)
# The primary's view only: CloudNativePG's default queries give the standby's byte distances.
_CNPG_LAG_BYTES = SignalTemplate(
    f"max by (namespace, pod) ({_as_pod(f'cnpg_pg_stat_replication_replay_diff_bytes{_STANDBY}')})",
    ("namespace", "pod"),
    Owner.REPLICA_PODS,
    None,
    hint="no cnpg_pg_stat_replication_replay_diff_bytes row for this standby on the primary",
)


def _cnpg_xacts(pods: str, owner: Owner) -> SignalTemplate:
    # Transactions per second on those pods: on replicas every transaction is a read; on the
    # primary reads and writes mix, so write QPS from the primary's transactions is an upper
    # bound. A PgBouncer pooler (spec.pooler.pgbouncer) tells the sides apart exactly.
    selector = _sel(NS, f'pod=~"${{{pods}}}"', NOT_APP_DBS)
    expr = (
        f"{_rate_by_set('cnpg_pg_stat_database_xact_commit', selector)}"
        f" + {_rate_by_set('cnpg_pg_stat_database_xact_rollback', selector)}"
    )
    return SignalTemplate(
        expr,
        ("namespace", "statefulset"),
        owner,
        _fresh_by_set("cnpg_pg_stat_database_xact_commit", selector),
        hint="no cnpg_pg_stat_database series for these pods",
    )


_CNPG_DIRECT: dict[SignalName, Template] = {
    SignalName.READ_QPS: _cnpg_xacts("replica_pods", Owner.READ_SET),
    SignalName.WRITE_QPS: _cnpg_xacts("primary_pods", Owner.PRIMARY_SET),
}
_CNPG_DIAGNOSTICS = bundle(
    {
        SignalName.READ_BYTES: (
            _blocks_read_bytes("cnpg_pg_stat_database_", "read_pods"),
            Owner.READ_SET,
            "no cnpg_pg_stat_database series",
        ),
        # backends_waiting: backends blocked by another backend's lock, on the primary.
        SignalName.LOCK_WAITS: (
            _set_sum(_avg, ("cnpg_backends_waiting_total",), _PRIMARY),
            Owner.PRIMARY_SET,
            "no cnpg_backends_waiting_total series for the primary",
        ),
        SignalName.DEADLOCKS: (
            _set_sum(_rate, ("cnpg_pg_stat_database_deadlocks",), _PRIMARY_APP_DBS),
            Owner.PRIMARY_SET,
            "no cnpg_pg_stat_database_deadlocks series for the primary",
        ),
    },
    _SET_BY,
)
# CloudNativePG's default pg_replication query: in_recovery is pg_is_in_recovery() as 1 / 0.
_CNPG_ROLE = _role("cnpg_pg_replication_in_recovery", "CloudNativePG's default monitoring queries")


def _cnpg(signal: SignalName, q: WorkloadQuery) -> Template:
    if signal is SignalName.REPLICATION_LAG:
        return _CNPG_LAG
    if signal is SignalName.REPLICATION_LAG_BYTES:
        return _CNPG_LAG_BYTES
    if signal is SignalName.IS_REPLICA:
        return _CNPG_ROLE
    if signal in _POOL_SIGNALS:
        return _pool_signal(signal, q)
    if signal in _CNPG_DIAGNOSTICS:
        return _CNPG_DIAGNOSTICS[signal]
    if signal not in SCALAR_SIGNALS:
        return _not_configured(signal, "CloudNativePG's default monitoring queries do not give it")
    if q.spec.pooler.pgbouncer is not None:
        return _PGB[signal]
    found = _CNPG_DIRECT.get(signal)
    if found is None:
        return _not_configured(
            signal, "CloudNativePG exports no query latency without a pooler (spec.pooler.pgbouncer)"
        )
    return found


# ---- mysql: mysqld_exporter -------------------------------------------------------------------------
_MYSQL_WRITES = "insert|insert_select|update|update_multi|delete|delete_multi|replace|replace_select|load"


def _mysql_qps(pods: str, commands: str, owner: Owner) -> SignalTemplate:
    selector = _sel(NS, f'pod=~"${{{pods}}}"', f'command=~"{commands}"')
    return SignalTemplate(
        _rate_by_set("mysql_global_status_commands_total", selector),
        ("namespace", "statefulset"),
        owner,
        _fresh_by_set("mysql_global_status_commands_total", selector),
        hint="no mysql_global_status_commands_total series for these pods",
    )


def _quantile_by_set(histogram: str, selector: str) -> str:
    return (
        "histogram_quantile(0.99, sum by (namespace, statefulset, le) "
        f"({_by_set(f'rate({histogram}{selector}[{W}])')}))"
    )


def _mysql_latency(side: str, pods: str, digest: str, owner: Owner) -> SignalTemplate:
    # The first source present wins, per StatefulSet (`or on (namespace, statefulset)`):
    #  1. the QUERY_RESPONSE_TIME plugin's read or write histogram (Percona Server;
    #     --collect.info_schema.query_response_time): a true p99 of that side;
    #  2. reads: the plugin's combined histogram (MariaDB 10.11 has only that one): a true p99
    #     of everything the read servers run, which on replicas is the reads;
    #  3. the average of performance_schema's statement digests of that side
    #     (--collect.perf_schema.eventsstatements), marked average on the series itself;
    #  4. writes: the combined histogram of the primary, last, since it mixes the primary's reads.
    h_sel = _sel(NS, f'pod=~"${{{pods}}}"')
    d_sel = _sel(NS, f'pod=~"${{{pods}}}"', f'digest_text=~"(?i){digest}.*"')
    own = _quantile_by_set(f"mysql_info_schema_{side}_query_response_time_seconds_bucket", h_sel)
    combined = _quantile_by_set("mysql_info_schema_query_response_time_seconds_bucket", h_sel)
    average = (
        f"{_rate_by_set('mysql_perf_schema_events_statements_seconds_total', d_sel)}"
        f" / {_rate_by_set('mysql_perf_schema_events_statements_total', d_sel)}"
    )
    tagged = f'label_replace({average}, "{AGGREGATION_LABEL}", "average", "", "")'
    chain = [own, combined, tagged] if side == "read" else [own, tagged, combined]
    return SignalTemplate(
        " or on (namespace, statefulset) ".join(chain),
        ("namespace", "statefulset"),
        owner,
        None,
        Aggregation.PERCENTILE,
        hint="no query response time histogram nor performance_schema statement digests for these pods",
    )


_MYSQL_REPLICA = _REPLICA
_MYSQL_LAG = SignalTemplate(
    # pt-heartbeat (--collect.heartbeat) when present: now minus the newest heartbeat row the
    # replica has applied, right on an idle primary and growing when the stream breaks. `min`
    # over server_id picks the current source's row (a former primary's row only ever ages).
    # Otherwise Seconds_Behind_Master/Source, only while the replica's IO thread runs (it reads
    # 0 or NULL when the stream is broken); no series at all is unknown, never 0. mysqld_exporter
    # names the columns as the server does: SHOW SLAVE STATUS (MariaDB, MySQL < 8.4) gives
    # seconds_behind_master and slave_io_running, SHOW REPLICA STATUS (MySQL 8.4+, exporter
    # 0.16+) seconds_behind_source and replica_io_running; either pair counts.
    "min by (namespace, pod) ("
    f"mysql_heartbeat_now_timestamp_seconds{_MYSQL_REPLICA}"
    " - on (namespace, pod, server_id) "
    f"mysql_heartbeat_stored_timestamp_seconds{_MYSQL_REPLICA})"
    " or max by (namespace, pod) ("
    f"(mysql_slave_status_seconds_behind_master{_MYSQL_REPLICA}"
    f" or mysql_slave_status_seconds_behind_source{_MYSQL_REPLICA})"
    f" and on (namespace, pod) ((mysql_slave_status_slave_io_running{_NS_ONLY}"
    f" or mysql_slave_status_replica_io_running{_NS_ONLY}) == 1))",
    ("namespace", "pod"),
    Owner.REPLICA_PODS,
    None,
    hint="no heartbeat or slave status series, or the replica's IO thread is not running",
)

_MYSQL: dict[SignalName, SignalTemplate] = {
    SignalName.READ_QPS: _mysql_qps("pods", "select", Owner.ALL_SETS),
    SignalName.WRITE_QPS: _mysql_qps("primary_pods", _MYSQL_WRITES, Owner.PRIMARY_SET),
    SignalName.READ_LATENCY: _mysql_latency("read", "read_pods", "select", Owner.READ_SET),
    SignalName.WRITE_LATENCY: _mysql_latency(
        "write", "primary_pods", "(insert|update|delete|replace)", Owner.PRIMARY_SET
    ),
    SignalName.REPLICATION_LAG: _MYSQL_LAG,
    # mysqld_exporter's global variables collector (on by default): read_only as 1 / 0. A
    # replica runs read-only; the primary, once promoted, does not.
    SignalName.IS_REPLICA: _role("mysql_global_variables_read_only", "mysqld_exporter's global variables"),
    # The key metrics, from SHOW GLOBAL STATUS on the primary (mysqld_exporter's default collector).
    **bundle(
        {
            SignalName.LOCK_WAITS: (
                _set_sum(_avg, ("mysql_global_status_innodb_row_lock_current_waits",), _PRIMARY),
                Owner.PRIMARY_SET,
                "no mysql_global_status_innodb_row_lock_current_waits series for the primary",
            ),
            # Innodb_deadlocks is MariaDB's (and Percona Server's); MySQL has no such status variable.
            SignalName.DEADLOCKS: (
                _set_sum(_rate, ("mysql_global_status_innodb_deadlocks",), _PRIMARY),
                Owner.PRIMARY_SET,
                "no mysql_global_status_innodb_deadlocks series (MariaDB and Percona Server export it, MySQL does not)",
            ),
            # Rows written (Handler_write/update/delete) per write statement (Com_insert, ...).
            SignalName.ROWS_PER_WRITE: (
                _rate_by_set(
                    "mysql_global_status_handlers_total",
                    _sel(NS, 'pod=~"${primary_pods}"', 'handler=~"write|update|delete"'),
                )
                + " / "
                + _rate_by_set(
                    "mysql_global_status_commands_total",
                    _sel(NS, 'pod=~"${primary_pods}"', f'command=~"{_MYSQL_WRITES}"'),
                ),
                Owner.PRIMARY_SET,
                "no mysql_global_status_handlers_total or commands_total series for the primary",
            ),
        },
        _SET_BY,
    ),
}


def _mysql(signal: SignalName, q: WorkloadQuery) -> Template:
    found = _MYSQL.get(signal)
    if found is None:
        return _not_configured(signal, "mysqld_exporter does not give it")
    return found


# ---- entry point --------------------------------------------------------------------------------
def _not_configured(signal: SignalName, why: str) -> Signal:
    return Signal.unknown(UnknownReason.NOT_CONFIGURED, f"{signal}: {why}; set spec.metrics.queries.{signal}")


_PRESETS: dict[MetricsPreset, Callable[[SignalName, WorkloadQuery], Template]] = {
    MetricsPreset.POSTGRES: _postgres,
    MetricsPreset.CNPG: _cnpg,
    MetricsPreset.MYSQL: _mysql,
}


def template_for(preset: MetricsPreset, signal: SignalName, q: WorkloadQuery) -> Template:
    """The preset's template of `signal` for this workload, or why there is none."""
    if preset is MetricsPreset.CUSTOM:
        return _not_configured(signal, "preset custom needs every query")
    return _PRESETS[preset](signal, q)


def all_templates() -> dict[str, list[SignalTemplate]]:
    """Every template of every preset (for the docs check and the PromQL syntax test)."""
    out: dict[str, list[SignalTemplate]] = {
        "pgbouncer": list(_PGB.values()),
        "postgres": [
            _PG_LAG,
            _PG_LAG_BYTES,
            _PG_ROLE,
            *_PG_DIRECT.values(),
            *(t for t in _PG_DIAGNOSTICS.values() if isinstance(t, SignalTemplate)),
        ],
        "cnpg": [
            _CNPG_LAG,
            _CNPG_LAG_BYTES,
            _CNPG_ROLE,
            *(
                t
                for t in (*_CNPG_DIRECT.values(), *_CNPG_DIAGNOSTICS.values())
                if isinstance(t, SignalTemplate)
            ),
        ],
        "mysql": list(_MYSQL.values()),
    }
    return out
