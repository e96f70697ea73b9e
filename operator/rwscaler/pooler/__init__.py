"""The pooler port: routing reads to the read pool a `Plan` chose, one package per pooler kind.

The routing interface is `rwscaler.boundary` (`ReadRouter`, and `ConnectionCounter` for a pooler
that can count a replica's server connections so `decide` can finish a drain). Each pooler is a
package that implements it and exposes `build_router(client, cluster)`; `registry` maps each
`PoolerKind` to that function, and `rwscaler.handlers` builds `Deps.routers` from the registry
only. The packages:

- `endpointslice/`: a selector-less read Service and the EndpointSlice listing the read pool;
- `pgbouncer/`: PgBouncer's `[databases]` section in a ConfigMap key, RELOAD / RECONNECT through
  each instance's admin console (psycopg, imported only when the router is built), and the
  per-replica server connection counts.

A new pooler is a new package here plus one line in `registry.FACTORIES`. Pooler packages use the
Kubernetes adapter (`rwscaler.kube`) and never import each other, kopf or the metrics layer (the
import-linter contracts in pyproject.toml).
"""
