"""`occi slurm submit`: the run's remaining stages as a chain of SLURM jobs.

Each stage becomes one or two steps: corpora and data preparation as job arrays over shards and
languages (then one job that joins them), tokenizer, export and report as single CPU jobs,
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
from occi.configtools import build, load_yaml
from occi.errors import OcciError
from occi.fsutil import atomic_write_json, atomic_write_text, is_done
from occi.slurm.config import ClusterProfile
from occi.slurm.render import TASK, Step, job_name, render

STAGE_FOLDERS = {"corpora": "corpora", "tokenizer": "tokenizer", "import": "base", "data": "data", "train": "train",
                 "export": "hf", "eval": "eval", "report": "report"}


def load_profile(name: str) -> tuple[ClusterProfile, Path]:
    path = _find_profile(name)
    return build(ClusterProfile, load_yaml(path), f"{path}: "), path


def _find_profile(name: str) -> Path:
    from occi.assets import asset_dir

    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate.resolve()
    shipped = asset_dir("slurm") / "clusters" / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    known = sorted(p.stem for p in (asset_dir("slurm") / "clusters").glob("*.yaml"))
    raise OcciError(f"unknown cluster {name!r}: expected one of {', '.join(known)} or a profile YAML path")


def plan(cfg: RunConfig, run_dir: Path, profile: ClusterProfile, chain: int = 1) -> list[Step]:
    """The steps of every stage not completed yet, in order, with their dependencies."""
    from occi.corpora.sources import plan_shards
    from occi.pipeline import STAGES, applies

    stage_names = [s.name for s in STAGES if applies(s, cfg)]
    steps: list[Step] = []
    previous: list[str] = []
    for stage in stage_names:
        if is_done(run_dir / STAGE_FOLDERS.get(stage, stage)):
            continue
        if stage == "corpora":
            ranks = max(1, min(len(plan_shards(cfg.corpora, cfg.languages)), profile.max_array_size))
            steps.append(Step("corpora-filter", stage, "cpu", [["corpora", "build", *_run_args(cfg, run_dir), "--rank", TASK,
                                                              "--world-size", ranks, "--phase", "filter"]],
                              array=ranks, throttle=profile.array_throttle, after=previous))
            steps.append(Step("corpora-dedup", stage, "cpu", [["corpora", "build", *_run_args(cfg, run_dir), "--phase", "dedup"]],
                              after=["corpora-filter"]))
            previous = ["corpora-dedup"]
        elif stage == "data":
            ranks = min(len(cfg.languages), profile.max_array_size)
            steps.append(Step("data-tokenize", stage, "cpu", [["data", "prepare", *_run_args(cfg, run_dir), "--rank", TASK,
                                                             "--world-size", ranks]],
                              array=ranks, throttle=profile.array_throttle, after=previous))
            steps.append(Step("data-blend", stage, "cpu", [["data", "prepare", *_run_args(cfg, run_dir)]], after=["data-tokenize"]))
            previous = ["data-blend"]
        elif stage == "train":
            steps.append(Step("train", stage, "train", array=chain if chain > 1 else None, throttle=1 if chain > 1 else None,
                              after=previous))
            previous = ["train"]
        elif stage == "eval":
            ranks = min(len(cfg.languages), profile.max_array_size)
            steps.append(Step("eval-languages", stage, "gpu", [["eval", *_run_args(cfg, run_dir), "--rank", TASK,
                                                              "--world-size", ranks]],
                              array=ranks, throttle=profile.array_throttle, after=previous))
            steps.append(Step("eval-table", stage, "cpu", [["eval", *_run_args(cfg, run_dir)]], after=["eval-languages"]))
            previous = ["eval-table"]
        else:
            # the report step runs `occi run`, which finds every earlier stage done and writes the report
            command = {"tokenizer": ["tokenizer", "train"], "export": ["export"], "report": ["run"]}.get(stage, [stage])
            steps.append(Step(stage, stage, "cpu", [[*command, *_run_args(cfg, run_dir)]], after=previous))
            previous = [stage]
    return steps


def _run_args(cfg: RunConfig, run_dir: Path) -> list[str]:
    return [cfg.source_file, "--run-dir", str(run_dir)]


def nodes_for(cfg: RunConfig, profile: ClusterProfile) -> int:
    if profile.gpu_request == "none":
        return 1
    return max(1, math.ceil(cfg.train.world_size / profile.gpus_per_node))


def submit(cfg: RunConfig, run_dir: Path, cluster: str, dry_run: bool = False, chain: int = 1) -> dict:
    """Writes the scripts into <run>/slurm/ and (unless dry_run) submits them in order."""
    profile, profile_path = load_profile(cluster)
    run_dir = Path(run_dir).resolve()
    slurm_dir = run_dir / "slurm"
    (slurm_dir / "logs").mkdir(parents=True, exist_ok=True)
    nodes = nodes_for(cfg, profile)
    if profile.gpu_request != "none" and cfg.train.world_size % profile.gpus_per_node and cfg.train.world_size > profile.gpus_per_node:
        raise OcciError(f"train: {cfg.train.world_size} processes do not fill whole nodes of {profile.gpus_per_node} GPUs")
    steps = plan(cfg, run_dir, profile, chain)
    config_path = Path(cfg.source_file).resolve()
    records = []
    for step in steps:
        script = slurm_dir / f"{step.name}.sbatch"
        atomic_write_text(script, render(step, cfg, profile, run_dir, config_path, nodes, Path.cwd()))
        records.append({"step": step.name, "stage": step.stage, "script": str(script), "array": step.array,
                        "after": step.after, "kind": step.kind, "nodes": nodes if step.kind == "train" else 1,
                        "job_id": None, "job_name": job_name(cfg.name, step.name)})
    if not dry_run and records:
        if profile.account == "env" and not os.environ.get("SBATCH_ACCOUNT"):
            raise OcciError(f"{profile_path}: this cluster charges a project account: export SBATCH_ACCOUNT=<project> first")
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
    lines += [header, "-" * len(header)]
    for record in result["steps"]:
        gpu = record["kind"] in ("gpu", "train")
        partition = profile.gpu_partition if gpu else profile.cpu_partition
        if record["kind"] == "train":
            resources = f"{record['nodes']} node(s) x {profile.gpus_per_node} dev"
        elif gpu:
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

