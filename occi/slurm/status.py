"""`occi slurm status` and `occi slurm cancel`: what the run's jobs are doing, and stopping them.

States come from `scontrol show job` (sacct needs a database many test clusters lack); a job
the controller has forgotten is judged by the stage's completion marker.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from occi.errors import OcciError
from occi.rundir import RunDir

FAILED = {"FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"}


def latest_submission(run_dir: Path) -> dict:
    path = Path(run_dir) / "slurm" / "jobs.json"
    if not path.exists():
        raise OcciError(f"{path}: no jobs submitted for this run; use `occi slurm submit` first")
    submissions = json.loads(path.read_text(encoding="utf-8"))["submissions"]
    return submissions[-1]


def query(job_id: str) -> list[dict]:
    """One dict per job (or array task) the controller still knows, from scontrol."""
    try:
        result = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise OcciError("scontrol not found: run `occi slurm status` where SLURM's commands are") from None
    if result.returncode != 0:
        return []
    tasks = []
    for line in result.stdout.splitlines():
        fields = {}
        for token in line.split():
            key, _, value = token.partition("=")
            fields[key] = value
        if fields:
            tasks.append(fields)
    return tasks


def step_status(record: dict, run_dir: Path) -> dict:
    tasks = query(record["job_id"]) if record.get("job_id") else []
    states = [t.get("JobState", "UNKNOWN") for t in tasks]
    run = RunDir.of(run_dir)
    done = run.doctor_report.exists() if record["stage"] == "doctor" else run.is_done(record["stage"])
    if not tasks:
        state = "COMPLETED" if done else "UNKNOWN"
    elif any(s in FAILED for s in states):
        state = "FAILED"
    elif any(s == "CANCELLED" for s in states):
        state = "CANCELLED"
    elif any(s in ("RUNNING", "COMPLETING") for s in states):
        state = "RUNNING"
    elif any(s in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED") for s in states):
        state = "PENDING"
    else:
        state = "COMPLETED" if all(s == "COMPLETED" for s in states) else states[0]
    reasons = sorted({t.get("Reason", "") for t in tasks if t.get("Reason") not in (None, "None", "")})
    failed = [t for t in tasks if t.get("JobState") in FAILED]
    info = {"step": record["step"], "job_id": record["job_id"], "state": state, "tasks": len(tasks),
            "elapsed": max((t.get("RunTime", "") for t in tasks), default=""), "reasons": reasons,
            "log": tasks[0].get("StdOut", "") if tasks else ""}
    if failed:
        first = failed[0]
        info["exit_code"] = first.get("ExitCode", "")
        info["log"] = first.get("StdOut", info["log"])
        info["log_tail"] = _tail(first.get("StdOut", ""))
    return info


def _tail(path: str, lines: int = 12) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def status(run_dir: Path) -> list[dict]:
    submission = latest_submission(run_dir)
    return [step_status(record, run_dir) for record in submission["steps"]]


def format_status(run_dir: Path, steps: list[dict]) -> str:
    header = f"{'step':<16} {'job':>9} {'state':<11} {'tasks':>5} {'elapsed':>11}  log"
    lines = [f"run {run_dir}", header, "-" * len(header)]
    for s in steps:
        lines.append(f"{s['step']:<16} {s['job_id'] or '-':>9} {s['state']:<11} {s['tasks']:>5} {s['elapsed']:>11}  {s['log']}")
    failed = [s for s in steps if s["state"] == "FAILED"]
    for s in failed:
        lines.append("")
        lines.append(f"step {s['step']} FAILED (job {s['job_id']}, exit code {s.get('exit_code', '?')}); last lines of {s['log']}:")
        lines.extend(f"  | {line}" for line in s.get("log_tail", []))
    cancelled = [s["step"] for s in steps if s["state"] == "CANCELLED"]
    if failed and cancelled:
        lines.append(f"cancelled because {failed[0]['step']} failed: {', '.join(cancelled)}")
    return "\n".join(lines)


def cancel(run_dir: Path) -> list[str]:
    """Cancels every job of the latest submission that is still queued or running."""
    submission = latest_submission(run_dir)
    ids = [r["job_id"] for r in submission["steps"] if r.get("job_id")]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, text=True, timeout=60)
    return ids
