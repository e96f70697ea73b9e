"""Splitting and judging answers (rwscaler.metrics.group) and parsing them (metrics.client).

Every way a value can be unusable is a distinct reason whose message names the signal.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from test_metrics_promql import PGBOUNCER, wq

from rwscaler.core.observation import Aggregation, UnknownReason
from rwscaler.metrics.client import QueryFailure, Series, parse_response
from rwscaler.metrics.group import Judge, index, owner_keys
from rwscaler.metrics.signals import Owner, SignalName

NOW = 1_000_000.0
BY = ("namespace", "pod")


def s(value: float, ts: float | None = None, **labels: str) -> Series:
    return Series(dict(labels), value, NOW if ts is None else ts)


def judge(signal: SignalName = SignalName.REPLICATION_LAG, staleness: float = 60.0) -> Judge:
    return Judge(signal, NOW, staleness)


def test_one_value_per_key() -> None:
    answer = index([s(0.5, namespace="shop", pod="a"), s(2.0, namespace="shop", pod="b")], BY)
    assert judge().one(answer, ("shop", "a")).value == 0.5
    assert judge().one(answer, ("shop", "b")).value == 2.0


def test_missing_key_is_empty_naming_signal_and_series() -> None:
    answer = index([s(0.5, namespace="shop", pod="a")], BY)
    sig = judge().one(answer, ("shop", "b"))
    assert sig.value is None and sig.reason is UnknownReason.EMPTY
    assert "replicationLag" in sig.message and 'pod="b"' in sig.message


def test_several_series_for_one_key_is_multiple_series() -> None:
    answer = index([s(1.0, namespace="shop", pod="a", x="1"), s(2.0, namespace="shop", pod="a", x="2")], BY)
    sig = judge().one(answer, ("shop", "a"))
    assert sig.reason is UnknownReason.MULTIPLE_SERIES and "2 series" in sig.message


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_are_not_a_number(bad: float) -> None:
    answer = index([s(bad, namespace="shop", pod="a")], BY)
    sig = judge().one(answer, ("shop", "a"))
    assert sig.value is None and sig.reason is UnknownReason.NOT_A_NUMBER
    assert "replicationLag" in sig.message


def test_stale_when_the_newest_sample_is_older_than_the_bound() -> None:
    series = [
        s(0.1, namespace="shop", pod="a"),
        s(NOW - 90, namespace="shop", pod="a", rwscaler_part="ts"),
        s(0.1, namespace="shop", pod="b"),
        s(NOW - 30, namespace="shop", pod="b", rwscaler_part="ts"),
    ]
    answer = index(series, BY)
    stale = judge(staleness=60).one(answer, ("shop", "a"))
    assert stale.reason is UnknownReason.STALE and "90s old" in stale.message
    assert judge(staleness=60).one(answer, ("shop", "b")).value == 0.1


def test_freshness_is_the_oldest_of_the_stamps() -> None:
    series = [
        s(1.0, namespace="shop", pod="a"),
        s(NOW - 5, namespace="shop", pod="a", rwscaler_part="ts", m="x"),
        s(NOW - 500, namespace="shop", pod="a", rwscaler_part="ts", m="y"),
    ]
    assert judge().one(index(series, BY), ("shop", "a")).reason is UnknownReason.STALE


def test_total_sums_keys_and_is_unknown_when_one_is() -> None:
    by = ("namespace", "statefulset")
    answer = index([s(10, namespace="shop", statefulset="p"), s(5, namespace="shop", statefulset="r")], by)
    j = judge(SignalName.READ_QPS)
    assert j.total(answer, [("shop", "p"), ("shop", "r")]).value == 15
    partial = j.total(answer, [("shop", "p"), ("shop", "gone")])
    assert partial.value is None and partial.reason is UnknownReason.EMPTY


def test_average_label_marks_the_value_as_average() -> None:
    by = ("namespace", "statefulset")
    answer = index([s(0.01, namespace="shop", statefulset="p", rwscaler_aggregation="average")], by)
    assert judge(SignalName.READ_LATENCY).one(answer, ("shop", "p")).aggregation is Aggregation.AVERAGE


def test_failure_keeps_its_reason_and_names_the_signal() -> None:
    sig = judge(SignalName.WRITE_QPS).failure(QueryFailure(UnknownReason.TIMEOUT, "no answer"))
    assert sig.reason is UnknownReason.TIMEOUT and sig.message == "writeQPS: no answer"


def test_owner_keys() -> None:
    q = wq(pooler=PGBOUNCER)
    assert owner_keys(Owner.READ_DATABASE, q) == [("shop", "orders_ro")]
    assert owner_keys(Owner.WRITE_DATABASE, q) == [("shop", "orders")]
    assert owner_keys(Owner.PRIMARY_SET, q) == [("shop", "orders-pg")]
    assert owner_keys(Owner.READ_SET, q) == [("shop", "orders-pg-replica")]
    assert owner_keys(Owner.ALL_SETS, q) == [("shop", "orders-pg"), ("shop", "orders-pg-replica")]
    assert owner_keys(Owner.REPLICA_PODS, q) == [
        ("shop", "orders-pg-replica-0"),
        ("shop", "orders-pg-replica-1"),
    ]
    lonely = wq(replicas=())
    # Without replicas the primary serves the reads, and only its set is summed.
    assert owner_keys(Owner.READ_SET, lonely) == [("shop", "orders-pg")]
    assert owner_keys(Owner.ALL_SETS, lonely) == [("shop", "orders-pg")]
    assert owner_keys(Owner.READ_DATABASE, wq()) == []


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_parse_vector_and_scalar() -> None:
    vector = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"pod": "a"}, "value": [12.5, "NaN"]},
                {"metric": {}, "value": [12.5, "+Inf"]},
            ],
        },
    }
    parsed = parse_response(200, body(vector))
    assert isinstance(parsed, list) and len(parsed) == 2
    assert parsed[0].labels == {"pod": "a"} and math.isnan(parsed[0].value) and parsed[0].timestamp == 12.5
    assert parsed[1].value == math.inf
    scalar = parse_response(
        200, body({"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}})
    )
    assert isinstance(scalar, list) and scalar[0].value == 3


@pytest.mark.parametrize(
    ("status", "payload", "reason"),
    [
        (
            400,
            {"status": "error", "errorType": "bad_data", "error": "parse error"},
            UnknownReason.QUERY_ERROR,
        ),
        (
            422,
            {"status": "error", "errorType": "execution", "error": "many-to-many"},
            UnknownReason.QUERY_ERROR,
        ),
        (503, {"status": "error", "errorType": "timeout", "error": "query timed out"}, UnknownReason.TIMEOUT),
        (503, {"status": "error", "errorType": "unavailable", "error": "x"}, UnknownReason.HTTP_ERROR),
        (
            200,
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            UnknownReason.QUERY_ERROR,
        ),
        (200, {"status": "success", "data": {"resultType": "vector"}}, UnknownReason.HTTP_ERROR),
    ],
)
def test_parse_failures(status: int, payload: dict[str, Any], reason: UnknownReason) -> None:
    parsed = parse_response(status, body(payload))
    assert isinstance(parsed, QueryFailure) and parsed.reason is reason


def test_parse_non_json_is_http_error_with_status() -> None:
    parsed = parse_response(502, b"<html>Bad Gateway</html>")
    assert isinstance(parsed, QueryFailure) and parsed.reason is UnknownReason.HTTP_ERROR
    assert "HTTP 502" in parsed.message


def test_a_value_without_a_stamp_in_a_dated_answer_is_stale() -> None:
    series = [s(3.0, namespace="shop", pod="a")]
    assert judge().one(index(series, BY, dated=True), ("shop", "a")).reason is UnknownReason.STALE
    # Undated answers (an expression timestamp() cannot date) rely on Prometheus' own staleness.
    assert judge().one(index(series, BY, dated=False), ("shop", "a")).value == 3.0
