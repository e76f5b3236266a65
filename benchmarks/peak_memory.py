"""Peak resident memory of this process, over the whole process or over one measured stretch.

Linux's ``ru_maxrss`` is the high-water mark of the process's whole life (a pytest worker's includes every earlier
test; a spawned child inherits its parent's). ``VmHWM`` in /proc/self/status starts afresh at exec, and writing 5 to
/proc/self/clear_refs resets it to the current RSS, so a benchmark run inside a longer-lived process can measure
its own peak. Elsewhere ``ru_maxrss`` is what there is.
"""
from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident memory (MB) since exec or since the last successful :func:`reset_peak_rss`."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the peak to the current RSS (Linux: ``echo 5 > /proc/self/clear_refs``) → whether it could be reset."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
