"""A cluster profile: how jobs are requested and how the environment is set up on one cluster.

Profiles live in slurm/clusters/<name>.yaml; a user adds their own by copying one. Nothing in a
profile is pasted into a script as shell code: modules, paths and variables are rendered as
quoted words of fixed commands (module load, source, export, apptainer exec).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from occi import ranges
from occi.assets import asset_dir
from occi.configtools import build, load_yaml
from occi.errors import OcciError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SBATCH_FLAG = re.compile(r"^--[a-z][a-z0-9-]*(=[^\s\n]+)?$")
_CPU_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


@dataclass
class ClusterProfile:
    description: str
    """What the cluster is, in one line."""
    cpu_partition: str
    """Partition for CPU jobs (corpora, tokenizer, data, export, report)."""
    gpu_partition: str
    """Partition for GPU jobs (training, evaluation)."""
    account: str | None = None
    """Project account charged (--account); None when the cluster needs none. "env": sbatch reads
    $SBATCH_ACCOUNT from the submitting shell (required at submit)."""
    qos: str | None = None
    """Quality of service (--qos); None: the partition's default. "env": sbatch reads $SBATCH_QOS
    from the submitting shell (required at submit), for clusters where the QoS is per project."""
    qos_time_limits: dict[str, str] = field(default_factory=dict)
    """Documented maximum wall time per QoS (HH:MM:SS or D-HH:MM:SS); submit checks the jobs'
    time limits against the QoS in use when it is listed."""
    eval_partition: str | None = None
    """Partition for one-device jobs (evaluation, the doctor without a node); None: gpu_partition.
    Use a partition that bills single devices, not whole nodes."""
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
    threads_per_core: int | None = None
    """--threads-per-core for every job (1 on SMT nodes, so that a task's CPUs are physical cores)."""
    rank_cpus: list[str] = field(default_factory=list)
    """CPU list per local rank (GPU order), e.g. LUMI's documented map; each training rank pins
    itself to its entry (OCCI_RANK_CPUS). Empty: no pinning beyond the job's allocation."""
    rdzv_host_suffix: str = ""
    """Appended to the first node's hostname for the rendezvous (JSC: "i", the InfiniBand name)."""
    signal_seconds: int = 300
    """USR1 is sent this long before a training job's time limit: time to write a checkpoint."""
    module_use: list[str] = field(default_factory=list)
    """Module paths added before loading (module use ...)."""
    modules: list[str] = field(default_factory=list)
    """Environment modules loaded before each job (module load ...)."""
    venv: str | None = None
    """A Python virtual environment to activate; "auto": the one running `occi slurm submit`."""
    container: str | None = None
    """A container image to run occi in (<container_runtime> exec)."""
    container_runtime: Literal["apptainer", "singularity"] = "apptainer"
    """The command that runs the container: apptainer, or singularity (LUMI: Singularity CE)."""
    container_flags: list[str] = field(default_factory=list)
    """Flags for <runtime> exec, e.g. [--nv] on NVIDIA, [--rocm] on AMD, [--bind=...]."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables of every job (NCCL, network, caches)."""
    sbatch_flags: list[str] = field(default_factory=list)
    """Extra sbatch options in --name=value form, e.g. --constraint=... ."""
    gpu_model: str = ""
    """The accelerator, as plans and cards name it (e.g. "NVIDIA A100 SXM4 40 GB")."""
    gpu_peak_tflops: float | None = None
    """Peak dense bf16 TFLOP/s of one device as gpus_per_node counts them (an MI250X GCD: half the
    package), from the vendor's datasheet; `occi plan` turns FLOPs into GPU-hours with it."""
    gpu_tdp_watts: float | None = None
    """Board power limit of one device (an MI250X GCD: half the package's), from the vendor's
    datasheet; `occi plan` estimates energy as GPU-hours x this (an upper bound for the GPUs alone)."""
    gpu_memory_gib: float | None = None
    """Memory of one device as gpus_per_node counts them (an MI250X GCD: 64), in GiB; `occi plan`
    shows the predicted peak against it, and doctor and submit refuse a layout that does not fit."""
    experimental: str = ""
    """Non-empty when the profile is known to be incomplete, saying what is missing."""
    unconfirmed: list[str] = field(default_factory=list)
    """Settings that the cluster's documentation did not confirm (shown with the plan)."""

    def __post_init__(self) -> None:
        for name in self.env:
            if not _ENV_NAME.match(name):
                raise ValueError(f"env: {name!r} is not a valid environment variable name")
        for flag in self.sbatch_flags:
            if not _SBATCH_FLAG.match(flag):
                raise ValueError(f"sbatch_flags: {flag!r} must look like --name=value (no spaces)")
        if self.venv and self.container:
            raise ValueError("set either venv or container, not both")
        for qos, limit in self.qos_time_limits.items():
            _seconds(limit, f"qos_time_limits.{qos}")
        for text in self.rank_cpus:
            if not _CPU_LIST.match(text):
                raise ValueError(f"rank_cpus: {text!r} is not a CPU list such as 0-7 or 1,3,5-7")
        if self.rank_cpus and len(self.rank_cpus) != self.gpus_per_node:
            raise ValueError(f"rank_cpus: {len(self.rank_cpus)} entries for {self.gpus_per_node} GPUs per node")
        ranges.check(self, {**{name: ranges.at_least(1) for name in ("gpus_per_node", "cpus_per_gpu", "cpus_per_cpu_job",
                                                                     "max_array_size", "array_throttle")},
                            "signal_seconds": ranges.at_least(0), "threads_per_core": ranges.at_least(1),
                            "gpu_peak_tflops": ranges.POSITIVE, "gpu_tdp_watts": ranges.POSITIVE,
                            "gpu_memory_gib": ranges.POSITIVE})


def _seconds(limit: str, what: str) -> int:
    """A SLURM time limit (HH:MM:SS or D-HH:MM:SS) in seconds."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d\d):(\d\d)", str(limit))
    if not match:
        raise ValueError(f"{what}: {limit!r} is not a time limit such as 24:00:00 or 2-00:00:00")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def time_seconds(limit: str) -> int:
    """A SLURM time limit in seconds (for comparing limits)."""
    return _seconds(limit, "time limit")


def parse_cpu_list(text: str) -> set[int]:
    """0-3,8 -> {0, 1, 2, 3, 8}."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def load_profile(name: str) -> tuple[ClusterProfile, Path]:
    """A shipped profile by name (slurm/clusters/<name>.yaml) or a profile YAML by path, and its file."""
    path = _find_profile(name)
    return build(ClusterProfile, load_yaml(path), f"{path}: "), path


def _find_profile(name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate.resolve()
    shipped = asset_dir("slurm") / "clusters" / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    known = sorted(p.stem for p in (asset_dir("slurm") / "clusters").glob("*.yaml"))
    raise OcciError(f"unknown cluster {name!r}: expected one of {', '.join(known)} or a profile YAML path")
