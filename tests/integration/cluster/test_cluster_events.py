"""Events are counted, not copied: the same Event repeated is one Event object with a count
(docs/operator.md, RBAC `events: create, patch`)."""

from __future__ import annotations

from collections.abc import Callable

from cluster_helpers import (
    Kube,
    Metrics,
    OperatorProcess,
    Signals,
    replica_pod,
    serving_from_both_replicas,
    wait_for,
)


def test_a_repeated_event_is_one_event_with_a_count(
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[[], OperatorProcess],
) -> None:
    serving_from_both_replicas(kube, ns, signals, prometheus.prometheus.url, operator)
    both = [replica_pod(0), replica_pod(1)]

    def lag_flips() -> list[object]:
        return [
            e
            for e in kube.events(ns, "orders")
            if e.reason == "ConditionChanged" and e.message.startswith("ReplicationLagHigh False -> True")
        ]

    for round_ in (1, 2, 3):
        signals.lag([1], 30.0)
        wait_for(f"lag flip {round_} counted", lambda r=round_: sum(e.count or 1 for e in lag_flips()) >= r)
        signals.lag([1], 0.1)
        wait_for(
            f"recovery {round_}",
            lambda: kube.slice_pods(ns) == both,
            timeout=30,
            last=lambda: kube.slice_pods(ns),
        )
    flips = lag_flips()
    assert len(flips) == 1 and flips[0].count == 3, [(e.metadata.name, e.count, e.message) for e in flips]
    assert flips[0].last_timestamp > flips[0].first_timestamp
