"""The plain manifests in manifests/ are the chart's rendering (`make manifests`,
tools/render_manifests.py), byte for byte, so they never drift from the chart.
"""

from __future__ import annotations

import pytest
from chart_helpers import REPO, Helm
from tools.render_manifests import ALERTS, DASHBOARD, OUTPUTS, render


def test_the_committed_manifests_equal_a_fresh_rendering(helm: Helm) -> None:
    fresh = render(helm.binary)
    assert sorted(fresh) == sorted([*OUTPUTS.values(), ALERTS, DASHBOARD])
    stale = [rel for rel, text in fresh.items() if (REPO / rel).read_text() != text]
    assert not stale, f"stale (run `make manifests`): {stale}"


@pytest.mark.parametrize("rel", sorted(OUTPUTS.values()))
def test_each_rendered_file_holds_one_object(rel: str) -> None:
    text = (REPO / rel).read_text()
    assert text.count("\nkind: ") == 1, rel
