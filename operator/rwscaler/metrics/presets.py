"""The presets: for each exporter family, the PromQL template of every signal.

Called by `prometheus.py` through `template_for(preset, signal, workload)`, which answers a
`SignalTemplate` (asked once per group of workloads) or an unknown `Signal` when the preset
cannot give that signal for that workload. The reference for users, with every metric name and
the reasoning behind each formula, is docs/metrics.md; keep the two in step.

Templates are written as for one workload; `promql.render` expands each placeholder to the
alternation over a whole group. So every template selects with `=~` and aggregates `by` the
labels its `Owner` needs to split the answer again.
"""

from __future__ import annotations

from rwscaler.core.observation import Aggregation, Signal, UnknownReason
from rwscaler.core.spec import MetricsPreset
from rwscaler.metrics.signals import Owner, SignalName, SignalTemplate
from rwscaler.metrics.source import WorkloadQuery

Template = SignalTemplate | Signal


def template_for(preset: MetricsPreset, signal: SignalName, q: WorkloadQuery) -> Template:
    """The preset's template of `signal` for this workload, or why there is none."""
    if preset is MetricsPreset.CUSTOM:
        return Signal.unknown(
            UnknownReason.NOT_CONFIGURED, f"{signal}: preset custom needs spec.metrics.queries.{signal}"
        )
    table = _PRESETS[preset]
    return table(signal, q)


def _not_configured(signal: SignalName, why: str) -> Signal:
    return Signal.unknown(UnknownReason.NOT_CONFIGURED, f"{signal}: {why}; set spec.metrics.queries.{signal}")


def _postgres(signal: SignalName, q: WorkloadQuery) -> Template:
    return _not_configured(signal, "the postgres preset is not available yet")


def _cnpg(signal: SignalName, q: WorkloadQuery) -> Template:
    return _not_configured(signal, "the cnpg preset is not available yet")


def _mysql(signal: SignalName, q: WorkloadQuery) -> Template:
    return _not_configured(signal, "the mysql preset is not available yet")


_PRESETS = {
    MetricsPreset.POSTGRES: _postgres,
    MetricsPreset.CNPG: _cnpg,
    MetricsPreset.MYSQL: _mysql,
}

__all__ = ["Aggregation", "Owner", "SignalTemplate", "Template", "template_for"]
