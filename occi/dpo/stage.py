"""`occi dpo`: preference pairs (checked, tokenized once) and megatron-core preference tuning on them.

The stage runs for configs with a `dpo:` section. It needs the run's tokenizer and a checkpoint to
start from: SFT's (`occi sft`), else the pretraining's or an imported base's. The data is prepared
by the launching process before the ranks start (under srun, by rank 0 while the others wait for
it); then the ranks train like SFT (occi/train/launch.py: torchrun locally, SIGTERM/SIGUSR1
checkpoint and stop, a re-run resumes).
"""
from __future__ import annotations

import os
from pathlib import Path

from occi.basemodel import run_model_config
from occi.config import RunConfig
from occi.dpo import data
from occi.dpo.data import Pairs
from occi.errors import OcciError
from occi.fsutil import atomic_write_json, is_done, mark_done
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sft.data import format_table
from occi.sft.stage import prepare_chat_data, wait_for_data, with_distill_files
from occi.sharding import Share


def has_dpo(cfg: RunConfig) -> bool:
    return cfg.dpo is not None


def tokenizer_source(cfg: RunConfig, run: RunDir) -> Path:
    """SFT's chat tokenizer where SFT ran, else the run's tokenizer (a base's, for a base run)."""
    if is_done(run.sft_tokenizer) or (run.sft_tokenizer / "tokenizer_config.json").is_file():
        return run.sft_tokenizer
    from occi.train.export import run_tokenizer_dir  # loads torch: only when used

    return run_tokenizer_dir(cfg, run)


def prepare_data(cfg: RunConfig, run: RunDir) -> dict:
    """dpo/tokenizer (with the chat template) and dpo/data (checked, tokenized pairs)."""
    from occi.dpo.trainer import dpo_seq_length  # loads torch: only when used

    if is_done(run.dpo_data):
        return run.read_json(run.dpo_stats) or {}
    seq_length = dpo_seq_length(cfg, run_model_config(cfg, run.root))
    return prepare_chat_data(cfg, with_distill_files(cfg.dpo, run.distill_pairs("*")), data,
                             tokenizer_source(cfg, run), run.dpo_tokenizer, run.dpo_data, run.dpo_stats, seq_length,
                             "dpo", "preference pair")


def _check_ready(cfg: RunConfig, run: RunDir) -> None:
    from occi.dpo.trainer import start_checkpoint  # loads torch: only when used

    if cfg.dpo is None:
        raise OcciError(f"{cfg.source_file}: no `dpo:` section; add one with the preference data sources")
    if cfg.train.context_parallel > 1:
        raise OcciError(f"{cfg.source_file}: train.context_parallel {cfg.train.context_parallel}: DPO sums "
                        "log-probabilities per sequence and does not split sequences; set it to 1 for `occi dpo`")
    if start_checkpoint(run.root) is None:
        raise OcciError(f"{run.checkpoints}: no checkpoint to tune; run `occi sft` (or `occi train`, or "
                        "`occi import` for a base model) first")


def dpo(cfg: RunConfig, run: RunDir) -> dict:
    """Prepares the data (once) and tunes to the planned steps, or until a stop."""
    from occi.train import checkpoints, launch, stop  # loads torch: only when used

    run = RunDir.of(run)
    _check_ready(cfg, run)
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))
    if not launch.inside_launch() or rank == 0:
        stats = prepare_data(cfg, run)
    else:
        wait_for_data(run.dpo_data, "DPO data")
        stats = run.read_json(run.dpo_stats) or {}
    if rank == 0:
        run.dpo_error.unlink(missing_ok=True)
    if launch.inside_launch():
        launch.rank_environment()
        if os.environ["RANK"] == "0":
            stop.clear(run.root)
        from occi.dpo.trainer import DPOTrainer  # loads torch: only when used
        from occi.train.trainer import main  # loads torch: only when used

        code = main(str(run.config_file), str(run.root), DPOTrainer, run.dpo_error)
    else:
        code = launch.run_torchrun(cfg, run, "occi.dpo.trainer", run.dpo_error)
    if run.dpo_error.exists():
        raise OcciError(run.dpo_error.read_text(encoding="utf-8").strip())
    if code != 0:
        raise OcciError(f"DPO failed (exit code {code}); the log above and {run.dpo} say why")
    reached = checkpoints.latest_iteration(run.root, run.dpo_checkpoints) or 0
    target = planned_steps(cfg, run)
    summary = {"steps": reached, "target_steps": target, "complete": reached >= target,
               "pairs": stats.get("totals", {}).get("kept"), "epochs": cfg.dpo.epochs, "loss": cfg.dpo.loss,
               "beta": cfg.dpo.beta, "reference": cfg.dpo.reference if cfg.dpo.loss == "sigmoid" else None,
               "hardware": launch.hardware(cfg)}
    if summary["complete"] and int(os.environ.get("RANK", "0")) == 0:
        atomic_write_json(run.dpo_summary, summary)
        mark_done(run.dpo)
    return summary


def planned_steps(cfg: RunConfig, run: RunDir) -> int:
    from occi.dpo import batches  # loads torch: only when used

    pairs = Pairs.load(run.dpo_data / "pairs.npz")
    return len(batches.plan(pairs, cfg.dpo.epochs, cfg.dpo.global_batch_size, cfg.seed))


def run(cfg: RunConfig, run: RunDir, share: Share = Share()) -> StageResult:
    """The dpo stage of the stage list (occi/pipeline.py)."""
    summary = dpo(cfg, run)
    table = format_table(RunDir.of(run).read_json(RunDir.of(run).dpo_stats) or {"languages": {}, "totals": {}}) \
        if summary["complete"] else ""
    state = "complete" if summary["complete"] else "stopped early; run the same command again to continue"
    return StageResult(f"{table}\ndpo: step {summary['steps']}/{summary['target_steps']} ({state}); checkpoints in "
                       f"{RunDir.of(run).dpo_checkpoints}".lstrip(), complete=summary["complete"])
