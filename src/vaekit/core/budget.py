"""Training budgets sized to the data: a table smaller than one batch gets a smaller share of the optimizer steps.

    steps = min(full, max(MIN_STEPS, ⌈full · min(1, n / batch_size)²⌉))

``full`` is the estimator's budget for a table that fills a batch (``max_steps``, or an epoch rule); at or above
``batch_size`` rows the budget is exactly ``full`` (the benchmarks' tables are all that large), below it shrinks
quadratically, so a 30-row table with batch 128 trains ~5% of the steps instead of fitting noise for 1000 steps.
"""
from __future__ import annotations

import math

MIN_STEPS = 100


def scaled_steps(n_rows: int, batch_size: int, full: int, min_steps: int = MIN_STEPS) -> int:
    """min(full, max(min_steps, ⌈full · min(1, n_rows / batch_size)²⌉)); ``full`` when n_rows >= batch_size."""
    full = max(1, int(full))
    fill = min(1.0, max(0, int(n_rows)) / max(1, int(batch_size)))
    return min(full, max(int(min_steps), math.ceil(full * fill * fill)))
