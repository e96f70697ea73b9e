"""The observe layer for signals: the only package that talks to Prometheus.

`source.py` is the contract the operator codes against (WorkloadQuery in, MetricsReading out);
the Prometheus implementation, the presets and the grouping of queries live beside it.
"""
