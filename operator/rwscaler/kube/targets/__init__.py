"""The scale targets: one module per kind, each a `rwscaler.boundary.ScaleTarget`.

`registry.target_for` picks the module for a `scaleTargetRef`: `statefulset` (apps/v1
StatefulSet), `cnpg_cluster` (CloudNativePG's Cluster), and `scalable` for any other kind that
serves the `scale` subresource. A new kind is a new module plus its line in `registry.KINDS`.
"""
