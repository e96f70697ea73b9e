"""The API server and the models agree on which specs are valid: 2,000 generated specs, each sent
to the real kube-apiserver (server-side dry-run, strict field validation: what `kubectl apply`
does) and to `ReadWriteWorkload.model_validate`, accept/reject compared one by one.

Specs start from a valid one and change one to four fields to values drawn from pools of valid
and invalid values (durations, URLs, names, keys, PromQL, quantities, bounds, blocks, unknown
fields) and from generators of near-misses. Not generated, because only the models (and the
admission webhook, which runs them) check them: non-empty PromQL that does not parse; and what
docs/operator.md "Admission" says the two may read differently (non-ASCII or percent-escaped
host names). The run is derandomized, so a failure reproduces.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

from cluster_helpers import GROUP, PLURAL, VERSION, Kube, workload_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from rwscaler.core.spec import ReadWriteWorkload

EXAMPLES = 2000

DURATIONS = st.one_of(
    st.sampled_from(
        [
            "5s",
            "1m30s",
            "500ms",
            "1ms",
            "0.5ms",
            "0s",
            "0.0001ms",
            "999ms",
            "1s",
            "0.9s",
            "fast",
            "",
            "5",
            "5S",
            "1h2m3s4ms",
            "99999h",
            "999999h",
            "1.5h",
            "01s",
            ".5s",
            "5s ",
            "-1s",
            "1e3s",
            "5us",
            "2h45m",
        ]
    ),
    st.from_regex(r"\A([0-9]{1,6}(\.[0-9]{1,3})?(ms|s|m|h|us)){1,4}\Z"),
)
HOSTS = ["prom", "prom.monitoring.svc", "127.0.0.1", "[::1]", "bad host", "", "a_b", "Prom", "x-y", "[]"]
PORTS = ["", ":0", ":1", ":9090", ":65535", ":65536", ":99999", ":123456789012345678901", ":abc", ":"]
URLS = st.builds(
    lambda scheme, sep, host, port, path: f"{scheme}{sep}{host}{port}{path}",
    st.sampled_from(["http", "https", "HTTP", "Https", "ftp", ""]),
    st.sampled_from(["://", "://", "://", ":/"]),
    st.sampled_from(HOSTS),
    st.sampled_from(PORTS),
    st.sampled_from(["", "/", "/prometheus", "?x=1", "/%zz", "/%41", "/a b"]),
)
NAMES = st.one_of(
    st.sampled_from(
        [
            "db",
            "db-replica",
            "DB",
            "db_replica",
            "-db",
            "db-",
            "a.b",
            "a..b",
            "",
            "1db",
            "a" * 63,
            "a" * 64,
            "a" * 253,
            "a" * 254,
            "db.replica-2",
        ]
    ),
    st.from_regex(r"\A[a-z0-9.\-]{1,12}\Z"),
)
KEYS = st.sampled_from(["token", "a/b", "a.b_c-d", "", "a b", "K"])
PROMQL = st.sampled_from(
    [
        "up",
        "",
        " ",
        'sum(rate(x{pod=~"${pods}"}[${window}]))',
        'x{pod=~"${podz}"}',
        "${",
        'x{a=~"$${pods}"}',
        'max by (pod) (lag{pod=~"${replica_pods}"})',
        "vector(1)",
    ]
)
QUANTITIES = st.sampled_from(["64Mi", "0", "0Mi", "64MB", "1", "1048576", "1.5Gi", "-1", "", "01Mi", "5Ti"])
COUNTS = st.sampled_from([-1, 0, 1, 2, 3, 1000, 1001])

# (path, values): each mutation sets one path (a dotted path from spec; "NAME" is metadata.name).
MUTATIONS: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("NAME", st.sampled_from(["w", "w" * 63, "w" * 64, "orders-db"])),
    ("objectives.readLatencyP99", DURATIONS),
    ("objectives.maxReplicationLag", DURATIONS),
    ("prometheus.timeout", DURATIONS),
    ("metrics.staleness", DURATIONS),
    ("prometheus.url", URLS),
    ("primary.statefulSet", NAMES),
    ("replicas.statefulSet", NAMES),
    ("pooler.readService", NAMES),
    ("prometheus.bearerTokenSecret", st.fixed_dictionaries({"name": NAMES, "key": KEYS})),
    ("metrics.queries.readQPS", PROMQL),
    ("metrics.queries.replicationLag", PROMQL),
    ("objectives.maxReplicationLagBytes", QUANTITIES),
    ("replicas.minReplicas", COUNTS),
    ("replicas.maxReplicas", COUNTS),
    (
        "behavior.scaleUp",
        st.sampled_from([{}, {"maxStep": 3}, {"stabilizationWindowSeconds": 10}, {"maxStep": 0}]),
    ),
    (
        "behavior.scaleDown",
        st.sampled_from([{"maxStep": 101}, {"stabilizationWindowSeconds": -1}, {"maxStep": 2}]),
    ),
    ("metrics.preset", st.sampled_from(["postgres", "cnpg", "mysql", "custom", "oracle"])),
    ("pooler.kind", st.sampled_from(["None", "EndpointSlice", "PgBouncer"])),
    (
        "replicas.scaleTargetRef",
        st.sampled_from([None, {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}]),
    ),
    ("consistency", st.sampled_from(["eventual", "bounded", "strong", "linearizable"])),
    ("replicas.surprise", st.just(True)),
]


def _set(spec: dict[str, Any], path: str, value: Any) -> None:
    node = spec
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    spec = workload_spec("http://127.0.0.1:9")
    del spec["behavior"]
    name = "orders"
    for path, values in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=4)):
        value = copy.deepcopy(draw(values))
        if path == "NAME":
            name = value
        else:
            _set(spec, path, value)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ReadWriteWorkload",
        "metadata": {"name": name},
        "spec": spec,
    }


def api_verdict(kube: Kube, ns: str, manifest: dict[str, Any]) -> str | None:
    """None when the API server would create it, else its message."""
    try:
        kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, manifest, dry_run="All", field_validation="Strict"
        )
    except ApiException as err:
        if err.status not in (400, 422):
            raise
        return str(json.loads(err.body).get("message", err.body))
    return None


def model_verdict(manifest: dict[str, Any]) -> str | None:
    try:
        ReadWriteWorkload.model_validate(manifest)
    except ValidationError as err:
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
    return None


def test_the_api_server_and_the_models_agree_on_every_generated_spec(kube: Kube, ns: str) -> None:
    seen: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(manifests())
    def agree(manifest: dict[str, Any]) -> None:
        api, model = api_verdict(kube, ns, manifest), model_verdict(manifest)
        seen["accepted" if api is None else "refused"] += 1
        assert (api is None) == (model is None), (
            f"the API server {'accepts' if api is None else 'refuses'} and the models "
            f"{'accept' if model is None else 'refuse'}:\n{json.dumps(manifest, indent=1)}\n"
            f"API server: {api}\nmodels: {model}"
        )

    agree()
    print(f"\n{sum(seen.values())} specs: {seen['accepted']} accepted, {seen['refused']} refused by both")
    assert sum(seen.values()) >= EXAMPLES
    # Both sides of the line are exercised, not one.
    assert seen["accepted"] >= EXAMPLES // 10 and seen["refused"] >= EXAMPLES // 10, seen
