"""What Prometheus's history would say at each step of a trace: the simulator's `Observation.history`.

The engine (engine.py) builds one `TraceHistory` per run of a policy that reads history and asks
it for step i's `History`. It answers from the trace's own past exactly what the metrics adapter
reads from Prometheus (docs/history.md): at step i the newest recorded sample is row i - 1 (a
policy sees the end of the previous step); a row whose metrics were unavailable was not recorded.

- seasons: the 5-minute averaged read QPS one season ago (`then`) and now (`now_qps`), and its
  highest value over the up and down horizons after that moment (forecast.horizons with the trace's step as the
  tick); unknown before the trace has a whole season behind it;
- ratios: total reads / total writes over each period of the trend window, oldest first, the
  last ending at the newest sample; a period not wholly inside the trace is unknown, as is one
  with no writes; `recent` over the last shiftSeconds and `recent_before` one period earlier.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from itertools import accumulate

from rwscaler.core.forecast import horizons
from rwscaler.core.observation import History, RatioHistory, Season
from rwscaler.core.spec import SEASON_SMOOTHING_S, ReadWriteWorkloadSpec
from rwscaler.sim.trace import Row


def _sliding_max(values: Sequence[float | None], width: int) -> list[float | None]:
    """out[j] = max(values[j : j + width + 1]) ignoring None (None when all are)."""
    out: list[float | None] = [None] * len(values)
    window: deque[int] = deque()
    # Walk backwards so the window is values[j .. j + width].
    for j in range(len(values) - 1, -1, -1):
        v = values[j]
        if v is not None:
            while window and (values[window[-1]] or 0.0) <= v:
                window.pop()
            window.append(j)
        while window and window[0] > j + width:
            window.popleft()
        out[j] = values[window[0]] if window else None
    return out


class TraceHistory:
    def __init__(self, rows: Sequence[Row], spec: ReadWriteWorkloadSpec, step: float) -> None:
        self.step = step
        trend = spec.behavior.trend
        self.up_s, self.down_s = horizons(spec, step)
        recorded = [r.read_qps if r.metrics_available else None for r in rows]
        smooth_n = max(1, round(SEASON_SMOOTHING_S / step))
        sums = [0.0, *accumulate(v or 0.0 for v in recorded)]
        counts = [0, *accumulate(1 if v is not None else 0 for v in recorded)]
        self.smooth: list[float | None] = []
        for j in range(len(recorded)):
            a = max(0, j + 1 - smooth_n)
            n = counts[j + 1] - counts[a]
            self.smooth.append((sums[j + 1] - sums[a]) / n if n else None)
        self.up_n = math.ceil(self.up_s / step)
        self.down_n = math.ceil(self.down_s / step)
        self.peak_up = _sliding_max(self.smooth, self.up_n)
        self.peak_down = _sliding_max(self.smooth, self.down_n)
        self.seasons = [(float(p), round(p / step)) for p in trend.seasonsSeconds]
        writes = [r.write_qps if r.metrics_available else 0.0 for r in rows]
        self.read_sum = sums
        self.write_sum = [0.0, *accumulate(writes)]
        self.counts = counts
        self.period_s = float(trend.periodSeconds)
        self.period_n = max(1, round(trend.periodSeconds / step))
        self.points_n = trend.windowSeconds // trend.periodSeconds
        self.shift_s = float(trend.shiftSeconds)
        self.shift_n = max(1, round(trend.shiftSeconds / step))

    def _ratio(self, a: int, b: int) -> float | None:
        """Reads / writes over rows [a, b): None unless wholly recorded history with writes."""
        if a < 0 or b <= a or self.counts[b] - self.counts[a] == 0:
            return None
        writes = self.write_sum[b] - self.write_sum[a]
        return (self.read_sum[b] - self.read_sum[a]) / writes if writes > 0 else None

    def at(self, i: int) -> History:
        newest = i - 1  # the newest recorded sample at step i
        seasons = []
        for period_s, k in self.seasons:
            j = newest - k
            if j < 0:
                seasons.append(Season(period_s))
                continue
            seasons.append(Season(period_s, self.smooth[j], self.peak_up[j], self.peak_down[j]))
        end = newest + 1
        points = tuple(
            self._ratio(
                end - (self.points_n - m) * self.period_n, end - (self.points_n - m - 1) * self.period_n
            )
            for m in range(self.points_n)
        )
        ratios = RatioHistory(
            period_s=self.period_s,
            points=points,
            shift_s=self.shift_s,
            recent=self._ratio(end - self.shift_n, end),
            recent_before=self._ratio(end - self.shift_n - self.period_n, end - self.period_n),
        )
        now_qps = self.smooth[newest] if newest >= 0 else None
        return History(self.up_s, self.down_s, tuple(seasons), ratios, now_qps)
