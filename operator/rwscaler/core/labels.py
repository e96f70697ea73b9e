"""Kubernetes label selectors, matched in memory: what `primarySelector` means for one pod.

Called by `core/roles.py`; pure, so the same rule serves the operator, the tests and the docs.
"""

from __future__ import annotations

from collections.abc import Mapping

from rwscaler.core.spec import LabelSelector, SelectorOperator


def matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Whether labels satisfy every matchLabels pair and every matchExpressions requirement."""
    if any(labels.get(key) != value for key, value in selector.matchLabels.items()):
        return False
    for req in selector.matchExpressions:
        present = req.key in labels
        if req.operator is SelectorOperator.IN and labels.get(req.key) not in req.values:
            return False
        if req.operator is SelectorOperator.NOT_IN and present and labels[req.key] in req.values:
            return False
        if req.operator is SelectorOperator.EXISTS and not present:
            return False
        if req.operator is SelectorOperator.DOES_NOT_EXIST and present:
            return False
    return True
