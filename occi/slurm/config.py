"""A cluster profile: how jobs are requested and how the environment is set up on one cluster.

Profiles live in slurm/clusters/<name>.yaml; a user adds their own by copying one. Nothing in a
profile is pasted into a script as shell code: modules, paths and variables are rendered as
quoted words of fixed commands (module load, source, export, apptainer exec).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from occi import ranges

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SBATCH_FLAG = re.compile(r"^--[a-z][a-z0-9-]*(=[^\s\n]+)?$")


@dataclass
class ClusterProfile:
    description: str
    """What the cluster is, in one line."""
    cpu_partition: str
    """Partition for CPU jobs (corpora, tokenizer, data, export, report)."""
    gpu_partition: str
    """Partition for GPU jobs (training, evaluation)."""
    account: str | None = None
    """Project account charged (--account); None when the cluster needs none. $SLURM_ACCOUNT
    from the environment is used when this is "env"."""
    gpus_per_node: int = 4
    """Accelerators per node."""
    gpu_request: Literal["gres", "gpus-per-node", "none"] = "gres"
    """How GPUs are requested: --gres=gpu:N, --gpus-per-node=N, or not at all (CPU clusters)."""
    cpus_per_gpu: int = 8
    """CPU cores per GPU (data loading, tokenization)."""
    cpus_per_cpu_job: int = 16
    """CPU cores of a CPU job (one array task)."""
    mem_per_cpu_job: str | None = None
    """Memory of a CPU job (--mem), e.g. 64G; None: the partition's default."""
    cpu_time: str = "04:00:00"
    """Time limit of CPU jobs."""
    gpu_time: str = "24:00:00"
    """Time limit of one training or evaluation job (a longer run is a chain of these)."""
    max_array_size: int = 1000
    """The cluster's MaxArraySize; arrays are never larger."""
    array_throttle: int = 32
    """At most this many tasks of an array run at once (%N)."""
    signal_seconds: int = 300
    """USR1 is sent this long before a training job's time limit: time to write a checkpoint."""
    modules: list[str] = field(default_factory=list)
    """Environment modules loaded before each job (module load ...)."""
    venv: str | None = None
    """A Python virtual environment to activate; "auto": the one running `occi slurm submit`."""
    container: str | None = None
    """An Apptainer image to run occi in (apptainer exec)."""
    container_flags: list[str] = field(default_factory=list)
    """Flags for apptainer exec, e.g. [--nv] on NVIDIA, [--rocm] on AMD."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables of every job (NCCL, network, caches)."""
    sbatch_flags: list[str] = field(default_factory=list)
    """Extra sbatch options in --name=value form, e.g. --constraint=... ."""
    experimental: str = ""
    """Non-empty when the profile is known to be incomplete, saying what is missing."""

    def __post_init__(self) -> None:
        for name in self.env:
            if not _ENV_NAME.match(name):
                raise ValueError(f"env: {name!r} is not a valid environment variable name")
        for flag in self.sbatch_flags:
            if not _SBATCH_FLAG.match(flag):
                raise ValueError(f"sbatch_flags: {flag!r} must look like --name=value (no spaces)")
        if self.venv and self.container:
            raise ValueError("set either venv or container, not both")
        ranges.check(self, {**{name: ranges.at_least(1) for name in ("gpus_per_node", "cpus_per_gpu", "cpus_per_cpu_job",
                                                                     "max_array_size", "array_throttle")},
                            "signal_seconds": ranges.at_least(0)})
