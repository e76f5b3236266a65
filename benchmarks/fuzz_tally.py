"""The bookkeeping the fuzzers share (fuzz_explorer.py, fuzz_folders.py): outcome counts, failures with their case,
the slowest case, a per-case time limit and a peak-RSS limit, summarised as one results document."""
from __future__ import annotations

import time
from typing import Any

from peak_memory import peak_rss_mb, reset_peak_rss
from provenance import provenance


class Tally:
    """Counts outcomes; a case slower than ``seconds_limit`` or a peak RSS over ``rss_limit_mb`` fails. The peak is
    the run's own where the OS lets it be reset (Linux), not that of the process it runs in (e.g. a pytest worker
    that ran other tests first); ``peak_rss_scope`` in the summary says which."""

    def __init__(self, seconds_limit: float, rss_limit_mb: float) -> None:
        self.seconds_limit, self.rss_limit_mb = seconds_limit, rss_limit_mb
        self.counts: dict[str, int] = {}
        self.failures: list[str] = []
        self.worst, self.worst_case, self.t0 = 0.0, "", time.perf_counter()
        self.provenance = provenance(threads=1)  # at the start: its load average is the one the run met
        self.rss_scope = "run" if reset_peak_rss() else "process"

    def fail(self, case: int, what: str, why: str) -> None:
        self.failures.append(f"case {case} ({what}): {why}")

    def record(self, case: int, what: str, outcome: str, seconds: float) -> None:
        """One finished case: its outcome counted, its time checked against the limit."""
        if seconds > self.worst:
            self.worst, self.worst_case = seconds, what
        if seconds > self.seconds_limit:
            self.fail(case, what, f"took {seconds:.2f} s (limit {self.seconds_limit} s)")
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def summary(self, target: str, cases: int, seed: int) -> dict[str, Any]:
        """The results document (the peak-RSS check is made here, at the end of the run)."""
        peak_mb = peak_rss_mb()
        if peak_mb > self.rss_limit_mb:
            self.failures.append(f"peak RSS {peak_mb:.0f} MB over the {self.rss_limit_mb:.0f} MB limit")
        return {"target": target, "cases": cases, "seed": seed, "outcomes": dict(sorted(self.counts.items())),
                "failures": len(self.failures), "failure_examples": self.failures[:50],
                "worst_case_seconds": round(self.worst, 4), "worst_case": self.worst_case,
                "total_seconds": round(time.perf_counter() - self.t0, 1), "peak_rss_mb": round(peak_mb, 1),
                "peak_rss_scope": self.rss_scope,
                "limits": {"seconds_per_case": self.seconds_limit, "peak_rss_mb": self.rss_limit_mb},
                **self.provenance}
