"""occi counts the cores it may use, as SLURM and taskset restrict them (os.cpu_count counts the node)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_cores_follow_the_cpu_affinity():
    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); from occi.machine import cores; print(cores())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "1"
    from occi.machine import cores

    assert cores() == len(os.sched_getaffinity(0))
