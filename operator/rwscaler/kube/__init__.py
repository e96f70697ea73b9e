"""The Kubernetes adapter: the only package (with `rwscaler.handlers`) that talks to the API server.

- `config.py`: the connection settings from a kubeconfig or the in-cluster service account
  (the project's own loader: the `kubernetes` package is not a runtime dependency);
- `client.py`: a small asyncio client on httpx, configured by `config.py`, returning plain dicts;
- `lease.py`: leader election on a coordination.k8s.io Lease (`rwscaler run --leader-elect`);
- `objects.py`: pure builders and parsers of the objects rwscaler reads and writes (owner
  references, the selector-less read Service, EndpointSlices, Events, status merge patches);
- `cluster.py`: `KubeCluster`, the implementation of `rwscaler.boundary.Cluster`;
- `targets/`: one `rwscaler.boundary.ScaleTarget` module per kind of scale target (StatefulSet,
  CloudNativePG Cluster, any kind serving `scale`) and their registry.
The pooler routers live in `rwscaler.pooler` (one package per pooler).
"""
