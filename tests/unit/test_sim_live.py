"""The live database of `make demo` (rwscaler/sim/live.py): the model follows the cluster's
replicas and read pool, and its exposition is what the demo's workload queries read
(hack/demo/shop.yaml). Expectations come from the model's documented formulas (sim/model.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rwscaler.sim.live import LiveDatabase, Load
from rwscaler.sim.model import ModelParams, Slowdown

PARAMS = ModelParams(provisioningSeconds=0, newReplicaLagSeconds=2)


def db(params: ModelParams = PARAMS) -> LiveDatabase:
    return LiveDatabase(params, "shop", "pg", "pg-replica", max_lag_s=5.0, now=0.0)


def series(text: str) -> dict[str, float]:
    """{'name{labels}': value} of an exposition, without the comments."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def read_p99_ms(base_ms: float, utilization: float) -> float:
    return base_ms / (1 - utilization)  # the model's queueing approximation below the knee


def test_read_latency_falls_when_a_replica_turns_ready_and_joins_the_pool() -> None:
    d = db()
    d.follow(ready=[0, 1], pool=[0, 1])
    two = d.advance(1.0, Load(reads=1200, writes=20))
    # 600 reads/s each of 1,000, plus replay: 0.25 x 20 / 4,000.
    assert two.read_p99 * 1000 == pytest.approx(read_p99_ms(5.0, 0.6 + 0.25 * 20 / 4000))
    d.follow(ready=[0, 1, 2], pool=[0, 1, 2])
    three = d.advance(2.0, Load(reads=1200, writes=20))
    assert three.read_p99 * 1000 == pytest.approx(read_p99_ms(5.0, 0.4 + 0.25 * 20 / 4000))
    assert series(d.exposition())['demo_db_replicas_ready{namespace="shop"}'] == 3


def test_a_replica_out_of_the_pool_takes_no_reads_and_no_pool_means_every_ready_replica() -> None:
    d = db()
    d.follow(ready=[0, 1, 2], pool=[0, 2])
    d.advance(1.0, Load(reads=1000, writes=10))
    reads = {k: v for k, v in series(d.exposition()).items() if k.startswith("demo_db_reads_per_second")}
    assert reads == {
        'demo_db_reads_per_second{namespace="shop",pod="pg-replica-0"}': 500,
        'demo_db_reads_per_second{namespace="shop",pod="pg-replica-2"}': 500,
    }
    d.follow(ready=[0, 1, 2], pool=None)
    assert d.pool == [0, 1, 2]
    d.follow(ready=[0, 1], pool=[0, 1, 2])  # a pod in the slice that is not Ready serves nothing
    assert d.pool == [0, 1]


def test_an_empty_pool_sends_reads_to_the_primary() -> None:
    d = db()
    d.follow(ready=[0, 1], pool=[])
    d.advance(1.0, Load(reads=500, writes=10))
    s = series(d.exposition())
    assert s['demo_db_reads_per_second{namespace="shop",pod="pg-0"}'] == 500
    assert not any("pg-replica" in k for k in s if k.startswith("demo_db_reads_per_second"))


def test_a_slowed_replica_lags_past_the_objective_under_a_write_surge_and_catches_up_after() -> None:
    slow = Slowdown(replica=1, start=10, end=40, applyFactor=0.33)
    d = db(PARAMS.model_copy(update={"slowdowns": (slow,)}))
    d.follow(ready=[0, 1], pool=[0, 1])
    t = 10.0
    d.advance(t, Load(1000, 20))
    lag: dict[int, float] = {}
    while t < 40:
        t += 1
        lag = d.advance(t, Load(1000, 2600)).lags
    # Replica 1 replays at most 4,000 x 0.33 writes/s of 2,600: its backlog grows ~1,300/s.
    assert lag[1] > 5.0 and lag[0] < 1.0
    lags = series(d.exposition())
    assert lags['demo_db_replication_lag_seconds{namespace="shop",pod="pg-replica-1"}'] == pytest.approx(
        lag[1], rel=1e-5
    )
    d.follow(ready=[0, 1], pool=[0])  # the operator took it out; the surge ends
    while t < 60:
        t += 1
        lag = d.advance(t, Load(1000, 20)).lags
    assert lag[1] < 1.0


def test_a_replica_that_just_turned_ready_starts_behind() -> None:
    d = db()
    d.follow(ready=[0], pool=[0])
    d.advance(1.0, Load(1000, 100))
    d.follow(ready=[0, 1], pool=[0])
    (replica,) = [r for r in d.cluster.replicas if r.ordinal == 1]
    assert replica.backlog == pytest.approx(2 * 100)  # newReplicaLagSeconds of writes


def test_nothing_is_exposed_before_the_first_step() -> None:
    assert db().exposition() == ""


def test_lag_is_the_age_of_the_oldest_write_not_replayed_so_it_stays_bounded_when_a_surge_stops() -> None:
    slow = Slowdown(replica=0, start=0, end=30, applyFactor=0.1)  # replays 400 writes/s of 2,600
    d = db(PARAMS.model_copy(update={"slowdowns": (slow,)}))
    d.follow(ready=[0], pool=[])
    for t in range(1, 31):
        during = d.advance(float(t), Load(0, 2600)).lags[0]
    # 30 s of surge: 2,200 writes/s pile up; the oldest not replayed was written ~26 s ago
    # (the first 30 x 400 = 12,000 writes were replayed: 12,000 / 2,600 = 4.6 s of writing).
    assert during == pytest.approx(0.05 + 30 - 12_000 / 2600, abs=0.1)
    after = d.advance(31.0, Load(0, 20)).lags[0]
    # The backlog is no older for writes having slowed down (backlog / 20 writes/s would be ~3,300 s).
    assert after < 30


def test_the_demo_workload_reads_only_series_the_live_database_serves() -> None:
    """hack/demo/shop.yaml's custom queries name the exposition's families (a rename in one
    would leave `make demo`'s workload with unknown metrics)."""
    shop = Path(__file__).resolve().parents[2] / "hack" / "demo" / "shop.yaml"
    (workload,) = [d for d in yaml.safe_load_all(shop.read_text()) if d and d["kind"] == "ReadWriteWorkload"]
    queries = workload["spec"]["metrics"]["queries"]
    d = db()
    d.follow(ready=[0], pool=[0])
    d.advance(1.0, Load(100, 10))
    served = {line.split("{")[0] for line in d.exposition().splitlines() if not line.startswith("#")}
    named = {n for q in queries.values() for n in re.findall(r"\b(demo_db_[a-z_0-9]+)", q)}
    assert len(queries) == 5 and named and named <= served
