"""From a run config and a cluster profile to one sbatch script per pipeline step.

The scripts call the same `occi` commands as a local run; nothing is pickled into a job. Values
that reach a script's shell part are shell-quoted; values that reach #SBATCH directives (which
sbatch reads without a shell) are checked to be single words, so no config string can inject
shell code or extra directives.
"""
from __future__ import annotations

import re
import shlex
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path

from occi.assets import asset_dir
from occi.config import RunConfig
from occi.errors import OcciError
from occi.pipeline import stage_named
from occi.rundir import RunDir
from occi.slurm.config import ClusterProfile
from occi.train import knobs

_DIRECTIVE_VALUE = re.compile(r"^[A-Za-z0-9_.:/%@+=,~-]+$")


class ArrayTask:
    """Stands for $SLURM_ARRAY_TASK_ID in a command (left unquoted, expanded by the shell)."""


TASK = ArrayTask()


@dataclass
class Step:
    name: str
    """corpora-filter, corpora-dedup, tokenizer, data-tokenize, data-blend, train, export, eval-..."""
    stage: str
    """The pipeline stage (its folder's _DONE marker says whether it is complete)."""
    kind: str
    """cpu, gpu (one device per task), node (one whole node: the doctor) or train (nodes x devices,
    the train template)."""
    commands: list[list] = field(default_factory=list)
    """occi command lines (argv lists after `occi`)."""
    array: int | None = None
    """Number of array tasks, or None for a single job."""
    throttle: int | None = None
    """At most this many array tasks at once."""
    after: list[str] = field(default_factory=list)
    """Steps that must succeed first (afterok)."""


def directive(value: object, what: str) -> str:
    """A value for an #SBATCH line: one word, no spaces, quotes or line breaks."""
    text = str(value)
    if not _DIRECTIVE_VALUE.match(text):
        raise OcciError(f"{what} {text!r} cannot go into an #SBATCH line: use letters, digits and ._:/%@+=,~- only")
    return text


def job_name(run_name: str, step: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"occi-{run_name}-{step}")[:64]


def python_command(profile: ClusterProfile) -> list[str]:
    """How a job starts Python: the submitting venv, the profile's venv, or a container."""
    if profile.venv == "auto":
        return [sys.executable]
    if profile.container:
        return [profile.container_runtime, "exec", *profile.container_flags, profile.container, "python"]
    return ["python"]


def environment_lines(profile: ClusterProfile) -> str:
    lines = []
    if profile.modules or profile.module_use:
        lines.append("module purge")
        lines.extend(f"module use {shlex.quote(m)}" for m in profile.module_use)
        lines.extend(f"module load {shlex.quote(m)}" for m in profile.modules)
    if profile.venv and profile.venv != "auto":
        lines.append(f"source {shlex.quote(str(Path(profile.venv) / 'bin' / 'activate'))}")
    lines.extend(f"export {name}={shlex.quote(value)}" for name, value in profile.env.items())
    if profile.rank_cpus:  # each training rank pins itself to its entry (occi/train/affinity.py)
        lines.append(f"export OCCI_RANK_CPUS={shlex.quote(';'.join(profile.rank_cpus))}")
    lines.append("export PYTHONUNBUFFERED=1")
    return "\n".join(lines)


def _quote(word) -> str:
    return '"$SLURM_ARRAY_TASK_ID"' if word is TASK else shlex.quote(str(word))


def command_line(python: list[str], argv: list) -> str:
    return " ".join(_quote(w) for w in [*python, "-m", "occi.cli", *argv])


def devices_of(step: Step, cfg: RunConfig, profile: ClusterProfile) -> int:
    """Devices per node of a step's job."""
    if step.kind == "train":
        return min(profile.gpus_per_node, cfg.train.world_size)
    return profile.gpus_per_node if step.kind == "node" else 1


def partition_of(step: Step, profile: ClusterProfile) -> str:
    """CPU jobs on the CPU partition, one-device jobs on the eval partition, nodes on the GPU one."""
    if step.kind == "cpu":
        return profile.cpu_partition
    if step.kind == "gpu":
        return profile.eval_partition or profile.gpu_partition
    return profile.gpu_partition


def knob_lines(cfg: RunConfig) -> str:
    """The memory and communication knobs as a comment (the ranks read them from the config), and
    the one-connection CUDA setting megatron's overlapped communication relies on to start a
    collective before the computation it should hide behind."""
    t = cfg.train
    lines = [f"# train knobs (from the config): {knobs.describe(t)}"]
    overlapped = (t.sequence_parallel and t.tensor_parallel > 1) or t.overlap_grad_reduce or t.context_parallel > 1
    if overlapped:
        lines.append("export CUDA_DEVICE_MAX_CONNECTIONS=1")
    return "\n".join(lines)


def render(step: Step, cfg: RunConfig, profile: ClusterProfile, run_dir: Path, config_path: Path,
           nodes: int, workdir: Path) -> str:
    """The sbatch script of one step."""
    log = RunDir(run_dir).slurm / "logs" / (f"{step.name}-%A_%a.out" if step.array else f"{step.name}-%j.out")
    python = python_command(profile)
    gpu = step.kind in ("gpu", "train", "node")
    directives = []
    if profile.account and profile.account != "env":
        directives.append(f"#SBATCH --account={directive(profile.account, 'account')}")
    if profile.qos and profile.qos != "env":  # "env": sbatch reads $SBATCH_QOS
        directives.append(f"#SBATCH --qos={directive(profile.qos, 'qos')}")
    if profile.threads_per_core:
        directives.append(f"#SBATCH --threads-per-core={profile.threads_per_core}")
    if step.array:
        throttle = f"%{step.throttle}" if step.throttle else ""
        directives.append(f"#SBATCH --array=0-{step.array - 1}{throttle}")
    devices = devices_of(step, cfg, profile)
    if gpu and profile.gpu_request == "gres":
        directives.append(f"#SBATCH --gres=gpu:{devices}")
    elif gpu and profile.gpu_request == "gpus-per-node":
        directives.append(f"#SBATCH --gpus-per-node={devices}")
    if profile.mem_per_cpu_job and not gpu:
        directives.append(f"#SBATCH --mem={directive(profile.mem_per_cpu_job, 'mem_per_cpu_job')}")
    directives.extend(f"#SBATCH {directive(flag, 'sbatch flag')}" for flag in profile.sbatch_flags)
    cpus = profile.cpus_per_gpu * devices if gpu else profile.cpus_per_cpu_job
    values = {
        "run_name": re.sub(r"\s", "_", cfg.name),
        "stage": step.name,
        "job_name": job_name(cfg.name, step.name),
        "log": directive(log, "log path (the run directory)"),
        "partition": directive(partition_of(step, profile), "partition"),
        "time": directive(profile.gpu_time if gpu else profile.cpu_time, "time limit"),
        "nodes": nodes if step.kind == "train" else 1,
        "cpus": cpus,
        "directives": "\n".join(directives),
        "environment": environment_lines(profile),
        "workdir": shlex.quote(str(workdir)),
    }
    template_name = "train.sbatch" if step.kind == "train" else "job.sbatch"
    template = string.Template((asset_dir("slurm") / "templates" / template_name).read_text(encoding="utf-8"))
    if step.kind == "train":  # a stage that trains on every rank: train or sft
        stage = stage_named(step.stage)
        procs = cfg.train.world_size if nodes == 1 else profile.gpus_per_node
        values.update({
            "signal_seconds": profile.signal_seconds,
            "stage": stage.name,
            "command": " ".join(shlex.quote(word) for word in stage.command),
            "train_done": shlex.quote(str(RunDir(run_dir).stage_folder(stage.name) / "_DONE")),
            "python": " ".join(shlex.quote(w) for w in python),
            "procs_per_node": procs,
            "rdzv_host_suffix": shlex.quote(profile.rdzv_host_suffix) if profile.rdzv_host_suffix else "",
            "config": shlex.quote(str(config_path)),
            "run_dir": shlex.quote(str(run_dir)),
            "knobs": knob_lines(cfg),
        })
    else:
        values["commands"] = "\n".join(command_line(python, argv) for argv in step.commands)
    return template.substitute(values)
