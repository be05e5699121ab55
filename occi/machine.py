"""What this process may use of the machine."""
from __future__ import annotations

import os


def cores() -> int:
    """The cores this process may run on: under SLURM (or taskset) the allocated ones, which
    os.cpu_count() does not see (it counts the whole node)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity on this OS (macOS)
        return os.cpu_count() or 1
