"""`occi slurm submit`: the run's remaining stages as a chain of SLURM jobs.

Each stage becomes one or more steps: a sharded stage as its job arrays in order (corpora: filter
over shards, dedup buckets over hash partitions, clusters over languages, write over shards; data
preparation over languages), then one job that joins them; tokenizer, export and report as single CPU jobs,
training as a chain of GPU jobs (--array=0-K%1, each resuming from the latest checkpoint), and
evaluation as an array over languages. Steps wait for their predecessors with afterok; a failed
step cancels its dependents (--kill-on-invalid-dep). Completed stages are not resubmitted.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import time
from pathlib import Path

from occi.config import RunConfig
from occi.errors import OcciError, warn
from occi.fsutil import atomic_write_json, atomic_write_text
from occi.pipeline import stages_of
from occi.preflight.manifest import check_fetched
from occi.rundir import RunDir
from occi.slurm.config import ClusterProfile, load_profile, time_seconds
from occi.slurm.estimate import memory_refusal
from occi.slurm.render import TASK, Step, job_name, partition_of, render


def plan(cfg: RunConfig, run: RunDir, profile: ClusterProfile, chain: int = 1,
         doctor: str | None = None) -> list[Step]:
    """The steps of every stage not completed yet, in order, with their dependencies: made from the
    stage list (occi/pipeline.py), so each stage's own command runs in its job. With `doctor` (the
    profile's path) `occi doctor` runs first on one whole node and every other step waits for it."""
    run = RunDir.of(run)
    steps: list[Step] = []
    previous: list[str] = []
    if doctor:
        steps.append(Step("doctor", "doctor", "node" if profile.gpu_request != "none" else "cpu",
                          [["doctor", str(run.config_file), "--run-dir", str(run.root), "--cluster", doctor]]))
        previous = ["doctor"]
    for stage in stages_of(cfg):
        if run.is_done(stage.name):
            continue
        command = [*stage.command, str(run.config_file), "--run-dir", str(run.root)]
        if stage.slurm == "train":  # the train template starts the ranks itself, resubmitting as a chain
            steps.append(Step(stage.name, stage.name, "train", array=chain if chain > 1 else None,
                              throttle=1 if chain > 1 else None, after=previous))
            previous = [stage.name]
        elif stage.sharded:  # its arrays in order, then the job that joins them
            for array_step in stage.array_steps:
                name = f"{stage.name}-{array_step.name}"
                tasks = min(stage.shard_count(cfg, run, array_step), profile.max_array_size)
                steps.append(Step(name, stage.name, stage.slurm,
                                  [[*command, "--rank", TASK, "--world-size", tasks, *array_step.options]],
                                  array=tasks, throttle=profile.array_throttle, after=previous))
                previous = [name]
            joins = f"{stage.name}-{stage.join_step}"
            steps.append(Step(joins, stage.name, "cpu", [command], after=previous))
            previous = [joins]
        else:
            steps.append(Step(stage.name, stage.name, stage.slurm, [command], after=previous))
            previous = [stage.name]
    return steps


def nodes_for(cfg: RunConfig, profile: ClusterProfile) -> int:
    if profile.gpu_request == "none":
        return 1
    return max(1, math.ceil(cfg.train.world_size / profile.gpus_per_node))


def submit(cfg: RunConfig, run: RunDir, cluster: str, dry_run: bool = False, chain: int = 1,
           doctor: bool = False) -> dict:
    """Writes the scripts into <run>/slurm/ and (unless dry_run) submits them in order; the jobs
    read the run's frozen config (<run>/config.yaml). On a cluster whose jobs run offline, what
    the run reads from the hub must be in the run's fetch manifest (`occi fetch`)."""
    profile, profile_path = load_profile(cluster)
    run = RunDir(RunDir.of(run).root.resolve())
    missing = None
    if profile.env.get("HF_HUB_OFFLINE") == "1":
        try:
            check_fetched(cfg, run, cluster)
        except OcciError as error:
            if not dry_run:  # no job starts with something missing
                raise
            missing = error
    check_memory(cfg, run, profile, cluster)
    slurm_dir = run.slurm
    (slurm_dir / "logs").mkdir(parents=True, exist_ok=True)
    nodes = nodes_for(cfg, profile)
    if profile.gpu_request != "none" and cfg.train.world_size % profile.gpus_per_node and cfg.train.world_size > profile.gpus_per_node:
        raise OcciError(f"train: {cfg.train.world_size} processes do not fill whole nodes of {profile.gpus_per_node} GPUs")
    try:
        steps = plan(cfg, run, profile, chain, doctor=str(profile_path) if doctor else None)
    except OcciError:
        if missing:  # planning needed what was not fetched: say what to fetch
            raise missing from None
        raise
    if missing:  # a dry run starts no job: the plan, and what must be fetched before submitting
        warn(str(missing))
    check_time_limits(profile, profile_path, os.environ.get("SBATCH_QOS") if profile.qos == "env" else profile.qos)
    records = []
    for step in steps:
        script = slurm_dir / f"{step.name}.sbatch"
        atomic_write_text(script, render(step, cfg, profile, run.root, run.config_file, nodes, Path.cwd()))
        records.append({"step": step.name, "stage": step.stage, "script": str(script), "array": step.array,
                        "after": step.after, "kind": step.kind, "nodes": nodes if step.kind == "train" else 1,
                        "job_id": None, "job_name": job_name(cfg.name, step.name)})
    if not dry_run and records:
        if profile.account == "env" and not os.environ.get("SBATCH_ACCOUNT"):
            raise OcciError(f"{profile_path}: this cluster charges a project account: export SBATCH_ACCOUNT=<project> first")
        if profile.qos == "env" and not os.environ.get("SBATCH_QOS"):
            raise OcciError(f"{profile_path}: this cluster needs your project's QoS: export SBATCH_QOS=<qos> first "
                            f"({', '.join(profile.qos_time_limits) or 'see the profile'} are known)")
        submitted: dict[str, str] = {}
        try:
            for record in records:
                dependency = [submitted[name] for name in record["after"] if name in submitted]
                record["job_id"] = _sbatch(record["script"], dependency)
                submitted[record["step"]] = record["job_id"]
        finally:
            _save_jobs(slurm_dir, cluster, records)
    elif dry_run:
        atomic_write_json(slurm_dir / "plan.json", {"cluster": cluster, "steps": records})
    return {"cluster": cluster, "profile": profile, "steps": records, "dry_run": dry_run, "slurm_dir": str(slurm_dir)}


def check_memory(cfg: RunConfig, run: RunDir, profile: ClusterProfile, cluster: str) -> None:
    """Refuses a training layout predicted not to fit the profile's GPUs (occi/train/memory.py)."""
    if run.is_done("train") or profile.gpu_request == "none":
        return
    try:
        refusal = memory_refusal(cfg, run, profile, cluster)
    except OcciError as error:  # the base's shape is not here yet: the import step brings it
        warn(f"memory not checked: {error}")
        return
    if refusal:
        raise OcciError(f"{cfg.source_file}: " + "; ".join(refusal))


def check_time_limits(profile: ClusterProfile, profile_path: Path, qos: str | None) -> None:
    """The jobs' time limits must fit the QoS in use, where the profile lists its maximum."""
    limit = profile.qos_time_limits.get(qos or "")
    if not limit:
        return
    for what, value in (("cpu_time", profile.cpu_time), ("gpu_time", profile.gpu_time)):
        if time_seconds(value) > time_seconds(limit):
            raise OcciError(f"{profile_path}: {what} {value} is longer than QoS {qos}'s limit {limit}; "
                            f"lower {what} in a copy of the profile or use another QoS")


def _sbatch(script: str, dependency: list[str]) -> str:
    command = ["sbatch", "--parsable"]
    if dependency:
        command.append("--dependency=afterok:" + ":".join(dependency))
    try:
        result = subprocess.run([*command, script], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise OcciError("sbatch not found: run `occi slurm submit` on a SLURM login node (or use --dry-run)") from None
    if result.returncode != 0:
        raise OcciError(f"sbatch {script} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip().split(";")[0]


def _save_jobs(slurm_dir: Path, cluster: str, records: list[dict]) -> None:
    path = slurm_dir / "jobs.json"
    history = json.loads(path.read_text()) if path.exists() else {"submissions": []}
    history["submissions"].append({"cluster": cluster, "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "steps": records})
    atomic_write_json(path, history)


def format_plan(result: dict) -> str:
    """The plan as a table a user reads at a glance."""
    profile: ClusterProfile = result["profile"]
    header = f"{'step':<16} {'job':>9} {'partition':<16} {'resources':<22} {'array':<9} after"
    lines = [f"cluster {result['cluster']}: {profile.description}"]
    if profile.experimental:
        lines.append(f"EXPERIMENTAL: {profile.experimental}")
    lines.extend(f"not confirmed: {item}" for item in profile.unconfirmed)
    lines += [header, "-" * len(header)]
    for record in result["steps"]:
        partition = partition_of(Step(record["step"], record["stage"], record["kind"]), profile)
        if record["kind"] == "train":
            resources = f"{record['nodes']} node(s) x {profile.gpus_per_node} dev"
        elif record["kind"] == "node":
            resources = f"1 node x {profile.gpus_per_node} dev"
        elif record["kind"] == "gpu":
            resources = "1 device"
        else:
            resources = f"{profile.cpus_per_cpu_job} cpus"
        array = f"0-{record['array'] - 1}" if record["array"] else "-"
        lines.append(f"{record['step']:<16} {record['job_id'] or '(dry run)':>9} {partition:<16} {resources:<22} "
                     f"{array:<9} {', '.join(record['after']) or '-'}")
    if not result["steps"]:
        lines.append("(nothing to submit: every stage is complete)")
    lines.append(f"scripts: {result['slurm_dir']}")
    return "\n".join(lines)

