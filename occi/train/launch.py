"""`occi train`: start the ranks, or be one.

Inside an existing launch (torchrun sets RANK/WORLD_SIZE; srun sets SLURM_PROCID/SLURM_NTASKS)
this process is one rank and trains directly. Otherwise it starts torchrun for the configured
tensor x pipeline x data parallel processes on this machine, forwards SIGTERM/SIGUSR1 to it
(torchrun passes SIGTERM on to the ranks, which checkpoint and stop), and reports the outcome.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from occi.config import RunConfig
from occi.errors import OcciError
from occi.fsutil import atomic_write_json, mark_done
from occi.machine import cores
from occi.train import checkpoints


def _slurm_rank_environment() -> dict[str, str]:
    """RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT from SLURM's variables (srun, one task per device)."""
    env = {"RANK": os.environ["SLURM_PROCID"], "WORLD_SIZE": os.environ["SLURM_NTASKS"],
           "LOCAL_RANK": os.environ.get("SLURM_LOCALID", "0")}
    if "MASTER_ADDR" not in os.environ:
        nodes = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST", "localhost")
        try:
            first = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                                   check=True).stdout.split()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            first = nodes.split(",")[0]
        env["MASTER_ADDR"] = first
    if "MASTER_PORT" not in os.environ:
        env["MASTER_PORT"] = str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000)
    return env


def _check_ready(cfg: RunConfig, run_dir: Path) -> None:
    if cfg.model is None:
        raise OcciError(f"{cfg.source_file}: no `model:`; name a model recipe (tiny, 125m, 1b, 7b) or a mapping")
    from occi.train.hf_import import is_base_run

    if is_base_run(cfg) and not (run_dir / "base" / "_DONE").exists():
        raise OcciError(f"{run_dir / 'base'}: the base model is not imported; run `occi import` first")
    if not (run_dir / "data" / "_DONE").exists():
        raise OcciError(f"{run_dir / 'data'}: the data is not prepared; run `occi data prepare` first")


def train(cfg: RunConfig, run_dir: Path) -> dict:
    """Trains (or resumes) until the configured steps, or a stop; returns a summary."""
    run_dir = Path(run_dir)
    _check_ready(cfg, run_dir)
    error_file = run_dir / "train" / "error.txt"
    error_file.unlink(missing_ok=True)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ or "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        if "RANK" not in os.environ:
            os.environ.update(_slurm_rank_environment())
        from occi.train import trainer

        code = trainer.main(cfg.source_file, str(run_dir))
    else:
        code = _run_torchrun(cfg, run_dir)
    if error_file.exists():
        raise OcciError(error_file.read_text(encoding="utf-8").strip())
    if code != 0:
        raise OcciError(f"training failed (exit code {code}); the log above and {run_dir / 'train'} say why")
    reached = checkpoints.latest_iteration(run_dir) or 0
    summary = {"steps": reached, "target_steps": cfg.train.steps, "complete": reached >= cfg.train.steps,
               "hardware": _hardware(cfg)}
    if summary["complete"] and int(os.environ.get("RANK", "0")) == 0:
        atomic_write_json(run_dir / "train" / "summary.json", summary)
        mark_done(run_dir / "train")
    return summary


def _hardware(cfg: RunConfig) -> str:
    """What the ranks ran on, for the model card."""
    import platform

    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.machine()})"
    nodes = int(os.environ.get("SLURM_NNODES", "1"))
    return f"{cfg.train.world_size} x {device}" + (f" on {nodes} nodes" if nodes > 1 else "")


def _run_torchrun(cfg: RunConfig, run_dir: Path) -> int:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={cfg.train.world_size}", "-m", "occi.train.trainer", cfg.source_file, str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, cores() // cfg.train.world_size)))}
    process = subprocess.Popen(command, env=env)
    stop_requested = False

    def forward(signum, frame):
        nonlocal stop_requested
        stop_requested = True
        process.send_signal(signal.SIGTERM)  # torchrun hands SIGTERM on to every rank

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        code = process.wait()
        # torchrun itself exits non-zero after a forwarded signal even when every rank stopped cleanly
        return 0 if stop_requested and not (run_dir / "train" / "error.txt").exists() else code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
