"""The kopf wiring, and nothing else: the only module that imports kopf.

`rwscaler run` (command_run.py) calls `run(options)`. Handlers, registered on a registry of their
own so that importing this module registers nothing globally:

- startup: kopf settings (standalone; its bookkeeping in `kopf.rwscaler.io/` annotations, never in
  status; no kopf-posted events: rwscaler posts its own) and the runtime (Kubernetes client,
  Prometheus metrics source, the read routers of `rwscaler.pooler.registry`, per-resource loops);
- event: every ReadWriteWorkload kopf sees gets its reconcile loop (`rwscaler.loops`), ticking
  `rwscaler.reconcile.reconcile` on `spec.behavior.intervalSeconds`; a deleted one loses it. The
  body kopf delivers is what the tick reads (`kube/watch_cache.py`); so are the StatefulSets,
  Services and rwscaler's EndpointSlices that kopf indices follow, and the pods. There is no
  finalizer: deletion never waits for the operator, and owner references let the
  garbage collector remove the read Service and EndpointSlice;
- create/update: only validate (`reconcile.check`: Ready=False with a specific reason at once if
  the spec is unusable) and, on update, wake the loop so a spec edit is acted on without waiting
  an interval;
- cleanup: stop the loops and close the clients;
- validate (admission, only with `--admission-webhook`): refuse a workload whose spec names a
  Secret the requesting user may not get or a ConfigMap they may not patch
  (`rwscaler.kube.access_review`; docs/security.md). Served by kopf's WebhookServer; the
  ValidatingWebhookConfiguration is the installer's (the chart's), never written by the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from rwscaler import heap, reconcile
from rwscaler.core.spec import GROUP, PLURAL, VERSION
from rwscaler.exposition import OwnMetrics
from rwscaler.kube import access_review, objects, pod_cache
from rwscaler.kube.client import KubeApiError, KubeClient
from rwscaler.kube.cluster import KubeCluster
from rwscaler.kube.config import load_config
from rwscaler.kube.lease import LeaseElector, LeaseTiming
from rwscaler.kube.shards import ShardMembership
from rwscaler.kube.targets.statefulset import scale_view
from rwscaler.kube.watch_cache import Watched
from rwscaler.loops import Loops
from rwscaler.metrics.source import MetricsSource
from rwscaler.pooler.registry import build_routers

log = logging.getLogger(__name__)

KOPF_ANNOTATION_PREFIX = "kopf.rwscaler.io"
# How often a standby's loops wake to find they still may not act (gaining the Lease wakes them).
STANDBY_TICK_S = 60.0
# A spec edit is acted on once edits have stopped for this long (a burst is decided on once).
SPEC_SETTLE_S = 2.0


@dataclass(frozen=True)
class LeaderElection:
    """`--leader-elect`: act only while holding this Lease (`rwscaler.kube.lease`)."""

    namespace: str
    name: str
    identity: str
    timing: LeaseTiming = field(default_factory=LeaseTiming)


@dataclass(frozen=True)
class Sharding:
    """`--shards`: the replicas of this group split the workloads (`rwscaler.kube.shards`)."""

    namespace: str
    group: str
    identity: str
    timing: LeaseTiming = field(default_factory=LeaseTiming)


@dataclass(frozen=True)
class AdmissionWebhook:
    """`--admission-webhook`: serve the references check over HTTPS at addr:port with this cert."""

    addr: str
    port: int
    certfile: str
    keyfile: str


# The handler id is the webhook's URL path: https://<service or host>/<ADMISSION_PATH>.
ADMISSION_PATH = "references"


@dataclass(frozen=True)
class RunOptions:
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    kubeconfig: str | None = None
    liveness_endpoint: str | None = None
    log_level: str = "info"
    leader_election: LeaderElection | None = None
    sharding: Sharding | None = None
    admission: AdmissionWebhook | None = None
    defaults: reconcile.OperatorDefaults = field(default_factory=reconcile.OperatorDefaults)
    metrics_address: tuple[str, int] | None = None  # serve the operator's own /metrics here


def _outage(err: Exception) -> str | None:
    """An unreachable or failing API server is one outage for every workload (loops.py logs it once)."""
    if isinstance(err, KubeApiError) and err.unavailable:
        return f"Kubernetes API unavailable: {err}"
    return None


@dataclass
class Runtime:
    client: KubeClient
    metrics: MetricsSource
    deps: reconcile.Deps
    elector: LeaseElector | None = None
    shards: ShardMembership | None = None
    # Per pod, what decides whether it can serve reads, as last seen (a change wakes its namespace).
    serving: dict[tuple[str, str], tuple[object, ...]] = field(default_factory=dict)
    # Each workload as kopf's watch last delivered it (read by ticks through `workloads`).
    bodies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # The operator's own metrics (exposition.py); None when /metrics is not served.
    own: OwnMetrics | None = None
    metrics_address: tuple[str, int] | None = None
    loops: Loops = field(init=False)
    _stop_serving: Callable[[], None] | None = field(init=False, default=None)
    _background: list[asyncio.Task[None]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.loops = Loops(self._tick, outage=_outage)

    def acting(self, namespace: str, name: str) -> bool:
        """Whether this replica may write for this workload: always on its own; with leader
        election while leading; with shards while it owns the workload."""
        if self.elector is not None and not self.elector.holds():
            return False
        return self.shards is None or self.shards.owns(namespace, name)

    def start(self) -> None:
        if self.own is not None and self.metrics_address is not None:
            self._stop_serving = self.own.serve(*self.metrics_address)
        self._background.append(asyncio.create_task(heap.trim_forever(), name="rwscaler heap trim"))
        if self.elector is not None:
            self._background.append(asyncio.create_task(self.elector.run(), name="rwscaler lease"))
            self._background.append(asyncio.create_task(self._follow_leadership(), name="rwscaler leading"))
        if self.shards is not None:
            self._background.append(asyncio.create_task(self.shards.run(), name="rwscaler shards"))
            self._background.append(asyncio.create_task(self._follow_shards(), name="rwscaler owning"))

    async def _follow_leadership(self) -> None:
        assert self.elector is not None
        while True:
            await self.elector.wait_changed()
            if self.elector.holds():
                # A new leader ticks every workload now: the memory in each status is where the
                # last leader left it, so nothing is lost and nothing is repeated.
                self.loops.wake_all()

    async def _follow_shards(self) -> None:
        assert self.shards is not None
        owned: set[tuple[str, str]] = set()
        while True:
            await self.shards.wait_changed()
            now = {key for key in self.loops.running() if self.acting(*key)}
            gained, lost = now - owned, owned - now
            if gained or lost:
                log.info(
                    "shards: %s owns %d of the %d workloads it knows (+%d -%d since the last change)",
                    self.shards.identity,
                    len(now),
                    len(self.loops.running()),
                    len(gained),
                    len(lost),
                )
                for verb, keys in (("takes", gained), ("gives up", lost)):
                    for ns, n in sorted(keys):
                        log.debug("shards: %s %s %s/%s", self.shards.identity, verb, ns, n)
            # The workloads gained tick now, from the status their last owner wrote.
            for key in gained:
                self.loops.wake(*key)
            owned = now

    async def _tick(self, namespace: str, name: str) -> float | None:
        if not self.acting(namespace, name):
            # A standby (or another shard's workload) keeps a loop here (so it is known at once
            # when this replica takes over) but reads and writes nothing; a takeover wakes it.
            if self.own is not None:
                self.own.forget(namespace, name)  # the replica that acts exports it
            return STANDBY_TICK_S
        started = time.monotonic()
        try:
            result = await reconcile.reconcile(self.deps, namespace, name)
        except Exception:
            if self.own is not None:
                self.own.failed(time.monotonic() - started)
            raise
        if result.gone:
            if self.own is not None:
                self.own.forget(namespace, name)
            return None
        if self.own is not None:
            self.own.tick(namespace, name, result, time.monotonic() - started)
        # Every tick at debug level; louder only when something happened (events posted).
        if result.problem is not None:
            level = logging.WARNING if result.events else logging.DEBUG
            log.log(level, "%s/%s: not reconciled: %s", namespace, name, result.problem.value)
        elif result.plan is not None:
            level = logging.INFO if result.events else logging.DEBUG
            log.log(level, "%s/%s: %s", namespace, name, result.plan.summary)
        return result.interval

    async def close(self) -> None:
        await self.loops.stop_all()
        for task in reversed(self._background):  # the lease task releases the Lease on cancel
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.metrics.close()
        await self.client.close()
        if self._stop_serving is not None:
            self._stop_serving()


def _metrics_source() -> MetricsSource:
    # Imported here so that a build without the Prometheus source still starts the CLI.
    from rwscaler.metrics.prometheus import PrometheusMetricsSource  # noqa: PLC0415

    return PrometheusMetricsSource()


# A kopf index: `namespace/name` -> the store of what kopf indexed under that key.
Index = Mapping[str, Iterable[Mapping[str, Any]]]


def _first(index: Index) -> Callable[[str, str], Mapping[str, Any] | None]:
    """Look up `namespace/name` in a kopf index (a key -> store of the values kopf indexed)."""

    def lookup(namespace: str, name: str) -> Mapping[str, Any] | None:
        return next(iter(index.get(f"{namespace}/{name}") or ()), None)

    return lookup


def build_runtime(
    options: RunOptions, pods: pod_cache.PodIndex | None = None, indices: Mapping[str, Index] | None = None
) -> Runtime:
    """The operator's runtime; `pods` and `indices` (statefulset, service, endpointslice): kopf's
    indices over the watched namespaces (absent: a LIST or GET per tick instead)."""
    client = KubeClient.from_kubeconfig(options.kubeconfig)
    source = None if pods is None else pod_cache.source(pods)
    bodies: dict[tuple[str, str], dict[str, Any]] = {}
    watched = {kind: Watched(_first(index)) for kind, index in (indices or {}).items()}
    cluster = KubeCluster(
        client,
        pods=source,
        workloads=Watched(lambda ns, n: bodies.get((ns, n))),
        scales={("apps", "StatefulSet"): watched["statefulset"]} if "statefulset" in watched else {},
        services=watched.get("service"),
        endpoint_slices=watched.get("endpointslice"),
    )
    metrics = _metrics_source()
    deps = reconcile.Deps(
        cluster=cluster, metrics=metrics, routers=build_routers(client, cluster), defaults=options.defaults
    )
    election = options.leader_election
    elector = (
        LeaseElector(client, election.namespace, election.name, election.identity, election.timing)
        if election is not None
        else None
    )
    sharding = options.sharding
    shards = (
        ShardMembership(client, sharding.namespace, sharding.group, sharding.identity, sharding.timing)
        if sharding is not None
        else None
    )
    own = None
    if options.metrics_address is not None:
        # The Prometheus source counts its failed queries by reason; another source has none.
        errors = getattr(metrics, "query_errors", None)
        own = OwnMetrics((lambda: errors) if errors is not None else dict)
    return Runtime(
        client=client,
        metrics=metrics,
        deps=deps,
        elector=elector,
        shards=shards,
        bodies=bodies,
        own=own,
        metrics_address=options.metrics_address,
    )


LIST_CHUNK = 500


def build_registry(options: RunOptions) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    resource = {"group": GROUP, "version": VERSION, "plural": PLURAL, "registry": registry}
    # The runtime is made at startup, inside kopf's event loop, and shared by every handler.
    holder: dict[str, Runtime] = {}

    # The pods of the watched namespaces, listed once and then followed (kube/pod_cache.py): the
    # scale targets select their pods here instead of a LIST per tick. kopf starts the
    # workloads' handlers (and so their loops) only once this index holds the initial listing.
    @kopf.index("pods", id="pod_index", registry=registry)
    def pod_index(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
        return {namespace or "": pod_cache.trimmed(body)}

    # The StatefulSets' count and selector, listed once and followed: read as their scale
    # subresource (kube/targets/statefulset.py) instead of a GET per tick.
    @kopf.index("apps", "v1", "statefulsets", id="statefulset_index", registry=registry)
    def statefulset_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
        return {f"{namespace}/{name}": scale_view(body)}

    # The read Services and rwscaler's own EndpointSlices, for the EndpointSlice pooler (the same
    # way: listed once, followed, read instead of a GET per tick).
    @kopf.index("", "v1", "services", id="service_index", registry=registry)
    def service_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
        return {f"{namespace}/{name}": objects.service_view(body)}

    @kopf.index("discovery.k8s.io", "v1", "endpointslices", id="endpointslice_index", registry=registry)
    def endpointslice_index(
        namespace: str | None, name: str, body: kopf.Body, labels: kopf.Labels, **_: Any
    ) -> dict[str, Any]:
        return (
            {f"{namespace}/{name}": objects.kept_copy(body)}
            if objects.rwscalers_endpoint_slice(labels)
            else {}
        )

    @kopf.on.event("pods", registry=registry)  # type: ignore[arg-type]
    async def pod_seen(type: str | None, name: str, namespace: str, body: kopf.Body, **_: Any) -> None:
        runtime = holder.get("runtime")
        if runtime is None:
            return
        key = (namespace, name)
        state = None if type == "DELETED" else pod_cache.serving_state(body)
        if runtime.serving.get(key) == state:
            return
        if state is None:
            runtime.serving.pop(key, None)
        else:
            runtime.serving[key] = state
        if type is not None:  # not the initial listing
            # A pod turned (un)ready, got or lost its IP, or went: the workloads of its namespace
            # decide now, not at their next interval (as the EndpointSlice controller would).
            runtime.loops.wake_namespace(namespace)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        settings.peering.standalone = True
        # No runtime watching of Namespaces and CRDs: `-n` names exact namespaces, and the CRD
        # must exist when the operator starts. This keeps its RBAC to what it really uses.
        settings.scanning.disabled = True
        settings.posting.enabled = False
        # The first listing of each kind in pages of 500, as client-go's reflectors list: no
        # single answer (read, then decoded) holds all of a fleet's pods at once.
        settings.watching.chunk_size = LIST_CHUNK
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_ANNOTATION_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_ANNOTATION_PREFIX)
        settings.persistence.finalizer = f"{KOPF_ANNOTATION_PREFIX}/finalizer"  # unused: no handler needs one
        if options.admission is not None:
            hook = options.admission
            settings.admission.server = kopf.WebhookServer(
                addr=hook.addr, port=hook.port, certfile=hook.certfile, pkeyfile=hook.keyfile
            )
        # kopf passes each index by its name.
        indices = {name: kwargs[f"{name}_index"] for name in ("statefulset", "service", "endpointslice")}
        runtime = build_runtime(options, kwargs["pod_index"], indices)
        runtime.start()
        holder["runtime"] = runtime

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # kopf's watches authenticate exactly as the operator's own client does. kopf calls this
        # again when the API server refuses the token (401): loading anew re-reads the token
        # file or re-runs the exec plugin.
        cfg = load_config(options.kubeconfig)
        cred = cfg.credential()
        cert = cfg.client_certificate()
        expires = cred.expires_at if cred is not None else None
        return kopf.ConnectionInfo(
            server=cfg.server,
            ca_path=cfg.ca_file,
            ca_data=cfg.ca_data,
            insecure=cfg.insecure,
            scheme="Bearer" if cred is not None and cred.token else None,
            token=cred.token if cred is not None else None,
            username=cfg.username,
            password=cfg.password,
            certificate_path=cert.cert_file if cert else None,
            certificate_data=cert.cert_data if cert else None,
            private_key_path=cert.key_file if cert else None,
            private_key_data=cert.key_data if cert else None,
            default_namespace=cfg.namespace,
            proxy_url=cfg.proxy_url,
            expiration=datetime.fromtimestamp(expires, UTC) if expires is not None else None,
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        runtime = holder.pop("runtime", None)
        if runtime is not None:
            await runtime.close()

    @kopf.on.event(**resource)  # type: ignore[arg-type]
    async def seen(type: str | None, name: str, namespace: str, body: kopf.Body, **_: Any) -> None:
        runtime = holder["runtime"]
        if type == "DELETED":
            runtime.deps.kept.pop((namespace, name), None)
            runtime.bodies.pop((namespace, name), None)
            if runtime.own is not None:
                runtime.own.forget(namespace, name)
            await runtime.loops.stop(namespace, name)
        else:
            # The tick reads the workload from here, not with a GET (kube/watch_cache.py).
            runtime.bodies[(namespace, name)] = objects.kept_copy(body)
            runtime.loops.ensure(namespace, name)

    @kopf.on.create(**resource)  # type: ignore[arg-type]
    @kopf.on.update(**resource)  # type: ignore[arg-type]
    async def validate(name: str, namespace: str, reason: kopf.Reason, **_: Any) -> None:
        runtime = holder["runtime"]
        if not runtime.acting(namespace, name):
            return  # a standby writes nothing; the replica that acts validates the same change
        async with runtime.loops.exclusive(namespace, name):
            problem = await reconcile.check(runtime.deps, namespace, name)
        if problem is not None:
            log.warning("%s/%s is not usable: %s", namespace, name, problem.value)
        if reason == kopf.Reason.UPDATE:
            # A spec edit is acted on now, not at the next interval. Not on create: a loop started
            # alone ticks at once anyway, and on a first start over a fleet (kopf "creates" every
            # workload it has not handled before) a wake of each would undo the spread first ticks.
            runtime.loops.wake(namespace, name, settle=SPEC_SETTLE_S)

    if options.admission is not None:
        # Every replica answers (a standby too): a review reads nothing and writes nothing.
        @kopf.on.validate(
            group=GROUP,
            version=VERSION,
            plural=PLURAL,
            registry=registry,
            id=ADMISSION_PATH,
            operations=["CREATE", "UPDATE"],
            side_effects=False,
        )
        async def references(
            body: kopf.Body, userinfo: kopf.UserInfo, namespace: str | None, **kwargs: Any
        ) -> None:
            runtime = holder["runtime"]
            old: kopf.Body | None = kwargs.get("old")
            ns = namespace or ""
            # What CEL cannot check (whether each PromQL query parses): the models, with the
            # same words as the operator's SpecInvalid (docs/operator.md "Admission").
            problem = reconcile.spec_problem(body.get("spec"))
            if problem is not None:
                raise kopf.AdmissionError(f"the spec is invalid: {problem}", code=422)
            try:
                message = await access_review.review(
                    runtime.client,
                    userinfo,
                    ns,
                    str(kwargs.get("operation") or ""),
                    body.get("spec"),
                    old.get("spec") if old is not None else None,
                )
            except access_review.ReviewError as err:
                log.warning("%s/%s: refused, unchecked: %s", ns, body.get("metadata", {}).get("name"), err)
                raise kopf.AdmissionError(f"rwscaler: {err}", code=503) from err
            if message is not None:
                raise kopf.AdmissionError(message, code=403)

    return registry


class _QuietRetries(logging.Filter):
    """kopf logs each retry of a request at ERROR ("Request attempt #2/9 failed; will retry: ...");
    in an API server outage that is a line per second per watch. rwscaler.loops already says an
    outage once: of kopf's retries only the first is kept (as a warning) and its escalation."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not (message.startswith("Request attempt #") and "failed; will retry" in message):
            return True
        if message.startswith(("Request attempt #1/", "Request attempt #1 ")):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        return False


def run(options: RunOptions) -> int:
    """Run the operator until it is stopped (SIGINT/SIGTERM); returns the exit code."""
    level = options.log_level
    kopf.configure(verbose=level == "debug", debug=level == "debug")
    logging.getLogger().setLevel(level.upper())
    if level != "debug":
        # One line per HTTP request and per handled watch event is noise above debug level.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # every liveness probe
        for handler in logging.getLogger().handlers:
            handler.addFilter(_QuietRetries())
    kopf.run(
        registry=build_registry(options),
        standalone=True,
        clusterwide=not options.namespaces,
        namespaces=list(options.namespaces),
        liveness_endpoint=options.liveness_endpoint,
    )
    return 0
