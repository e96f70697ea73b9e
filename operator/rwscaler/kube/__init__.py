"""The Kubernetes adapter: the only package (with `rwscaler.handlers`) that talks to the API server.

- `client.py`: a small asyncio client on httpx, configured from a kubeconfig or the in-cluster
  service account (through the `kubernetes` package's loaders), returning plain dicts;
- `objects.py`: pure builders and parsers of the objects rwscaler reads and writes (owner
  references, the selector-less read Service, EndpointSlices, Events, status merge patches);
- `cluster.py`: `KubeCluster`, the implementation of `rwscaler.boundary.Cluster`;
- `endpointslice.py`: `EndpointSliceRouter`, the `EndpointSlice` pooler.
`configmap.py` (the PgBouncer ConfigMap) belongs to the PgBouncer pooler.
"""
