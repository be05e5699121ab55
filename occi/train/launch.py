"""`occi train`: start the ranks, or be one.

Inside an existing launch (torchrun sets RANK/WORLD_SIZE; srun sets SLURM_PROCID/SLURM_NTASKS)
this process is one rank and trains directly. Otherwise it starts torchrun for the configured
tensor x pipeline x data parallel processes on this machine; SIGTERM/SIGUSR1 to it become a stop
request the ranks see at the end of their step (occi/train/stop.py says why not through
torchrun); a second signal is passed on to torchrun.
"""
from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
from pathlib import Path

import torch

from occi import lifeline
from occi.basemodel import is_base_run, run_model_config, vocab_size
from occi.config import RunConfig
from occi.errors import OcciError
from occi.fsutil import atomic_write_json, mark_done
from occi.machine import cores
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sharding import Share
from occi.train import checkpoints, knobs, stop, trackers, trainer
from occi.train.config import padded_vocab_size
from occi.train.logs import read_log
from occi.train.model import has_transformer_engine
from occi.train.moe_logs import plot_expert_load


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


def inside_launch() -> bool:
    """True when this process is one rank of a torchrun or srun launch (it trains itself)."""
    return ("RANK" in os.environ and "WORLD_SIZE" in os.environ
            or "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1)


def rank_environment() -> None:
    """Sets RANK, WORLD_SIZE, ... from SLURM's variables when srun started this rank."""
    if "RANK" not in os.environ:
        os.environ.update(_slurm_rank_environment())


def _check_ready(cfg: RunConfig, run: RunDir) -> None:
    if cfg.model is None:
        raise OcciError(f"{cfg.source_file}: no `model:`; name a model recipe (tiny, 125m, 1b, 7b) or a mapping")

    if is_base_run(cfg):
        run.require("import")
    run.require("data")

    refused = knobs.refusal(cfg.train, has_transformer_engine())
    if refused:
        raise OcciError(f"{cfg.source_file}: {refused}")
    trackers.check_installed(cfg.train.trackers)


def train(cfg: RunConfig, run: RunDir) -> dict:
    """Trains (or resumes) until the configured steps, or a stop; returns a summary."""
    run = RunDir.of(run)
    run_dir = run.root
    _check_ready(cfg, run)
    error_file = run.train_error
    error_file.unlink(missing_ok=True)
    if inside_launch():
        rank_environment()
        if os.environ["RANK"] == "0":
            stop.clear(run_dir)  # a request left by an earlier local launch is not for this one

        code = trainer.main(str(run.config_file), str(run_dir))
    else:
        code = run_torchrun(cfg, run)
    if error_file.exists():
        raise OcciError(error_file.read_text(encoding="utf-8").strip())
    if code != 0:
        raise OcciError(f"training failed (exit code {code}); the log above and {run.train} say why")
    reached = checkpoints.latest_iteration(run_dir) or 0
    summary = {"steps": reached, "target_steps": cfg.train.steps, "complete": reached >= cfg.train.steps,
               "hardware": hardware(cfg)}
    if summary["complete"] and int(os.environ.get("RANK", "0")) == 0:
        summary.update(_parameters(cfg, run))
        atomic_write_json(run.train_summary, summary)
        mark_done(run.train)
    return summary


def run(cfg: RunConfig, run: RunDir, share: Share = Share()) -> StageResult:
    """The train stage of the stage list (occi/pipeline.py)."""
    summary = train(cfg, run)
    state = "complete" if summary["complete"] else "stopped early; run the same command again to continue"
    return StageResult(f"train: step {summary['steps']}/{summary['target_steps']} ({state}); checkpoints in "
                       f"{run.checkpoints}", complete=summary["complete"])


def _parameters(cfg: RunConfig, run: RunDir) -> dict:
    """Total and active parameters (they differ for a mixture of experts: a token uses top-k of
    the experts); for a mixture, also the PNG of expert load per layer from the training log."""
    model = run_model_config(cfg, run.root)
    rows = padded_vocab_size(vocab_size(model, run), model, cfg.train.tensor_parallel)
    out = {"parameters": model.parameters(rows), "active_parameters": model.parameters(rows, active=True)}
    if model.is_moe:
        if plot_expert_load(read_log(run.train), run.expert_load_plot):
            out["expert_load_plot"] = run.relative(run.expert_load_plot)
    return out


def hardware(cfg: RunConfig) -> str:
    """What the ranks ran on, for the model card."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.machine()})"
    nodes = int(os.environ.get("SLURM_NNODES", "1"))
    return f"{cfg.train.world_size} x {device}" + (f" on {nodes} nodes" if nodes > 1 else "")


def run_torchrun(cfg: RunConfig, run: RunDir, module: str = "occi.train.trainer", error_file: Path | None = None) -> int:
    """Runs `module` (a rank's entry point: config file, run directory) on the configured ranks."""
    error_file = error_file or run.train_error
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={cfg.train.world_size}", "-m", module, str(run.config_file), str(run.root)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, cores() // cfg.train.world_size)))}
    stop.clear(run.root)
    process: subprocess.Popen | None = None
    signals = 0

    def on_signal(signum, frame):
        nonlocal signals
        signals += 1
        if signals == 1:
            stop.request(run.root, signum)  # the ranks see it at the end of their current step
            print(f"train: {signal.Signals(signum).name} received: the ranks checkpoint at the end of this step "
                  "and stop (signal again to end torchrun)", flush=True)
        elif process is not None:
            process.send_signal(signal.SIGTERM)  # torchrun passes SIGTERM on to every rank

    previous = {sig: signal.signal(sig, on_signal) for sig in stop.SIGNALS}  # before the ranks exist
    try:
        print(f"train: starting {cfg.train.world_size} rank(s) with torchrun; SIGUSR1 or SIGTERM: checkpoint "
              "and stop", flush=True)
        process = subprocess.Popen(command, env=env, preexec_fn=lifeline.child_setup())  # dies with us
        code = process.wait()
        # after a second signal torchrun exits non-zero even when every rank stopped cleanly
        return 0 if signals > 1 and code != 0 and not error_file.exists() else code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop.clear(run.root)
