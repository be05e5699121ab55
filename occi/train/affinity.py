"""Pinning a training rank to the CPU cores of its device, where the cluster profile gives a map.

Under `srun torchrun` there is one SLURM task per node, so srun's own --cpu-bind cannot give each
rank the cores next to its GPU (LUMI documents such a map); the profile's `rank_cpus` reaches the
ranks as OCCI_RANK_CPUS ("49-55;57-63;..." in local-rank order) and each rank pins itself here.
"""
from __future__ import annotations

import os

from occi.slurm.config import parse_cpu_list


def rank_cpus(local_rank: int, spec: str | None = None) -> set[int] | None:
    """The cores of `local_rank` from OCCI_RANK_CPUS, or None when no map is set."""
    spec = os.environ.get("OCCI_RANK_CPUS", "") if spec is None else spec
    entries = [e for e in spec.split(";") if e.strip()]
    if not entries:
        return None
    return parse_cpu_list(entries[local_rank % len(entries)].strip())


def pin_this_rank() -> str | None:
    """Pins this process to its rank's cores when a map is set and those cores are allocated to
    it; returns what was done (or why not), None when there is no map."""
    wanted = rank_cpus(int(os.environ.get("LOCAL_RANK", "0")))
    if wanted is None or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    usable = wanted & allowed
    if not usable:
        return f"OCCI_RANK_CPUS: none of cores {sorted(wanted)} is allocated to this rank; left unpinned"
    os.sched_setaffinity(0, usable)
    return f"pinned to cores {sorted(usable)}"
