"""`occi sft`: chat data (checked, tokenized once) and megatron-core fine-tuning on it.

The stage runs for configs with an `sft:` section. It needs the run's tokenizer and a checkpoint
to start from: the pretraining's (`occi train`) or an imported base's (`occi import`, then
`occi sft` directly). The data is prepared by the launching process before the ranks start
(under srun, by rank 0 while the others wait for it); then the ranks train like pretraining
(occi/train/launch.py: torchrun locally, SIGTERM/SIGUSR1 checkpoint and stop, a re-run resumes).
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from occi.basemodel import is_base_run, run_model_config
from occi.config import RunConfig
from occi.errors import OcciError
from occi.fsutil import atomic_dir, atomic_write_json, is_done, mark_done
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sft import data, template
from occi.sharding import Share


def has_sft(cfg: RunConfig) -> bool:
    return cfg.sft is not None


def tokenizer_source(cfg: RunConfig, run: RunDir) -> Path:
    """The run's tokenizer folder (for a base run not past its tokenizer stage: the base's)."""
    from occi.train.export import run_tokenizer_dir  # loads torch: only when used

    return run_tokenizer_dir(cfg, run)


def prepare_data(cfg: RunConfig, run: RunDir) -> dict:
    """sft/tokenizer (with the chat template) and sft/data (checked, tokenized conversations)."""
    from occi.sft.trainer import sft_seq_length  # loads torch: only when used

    if is_done(run.sft_data):
        return run.read_json(run.sft_stats) or {}
    seq_length = sft_seq_length(cfg, run_model_config(cfg, run.root))
    return prepare_chat_data(cfg, with_distill_files(cfg.sft, run.distill_rows("*")), data, tokenizer_source(cfg, run),
                             run.sft_tokenizer, run.sft_data, run.sft_stats, seq_length, "sft", "conversation")


def with_distill_files(section, pattern: Path):
    """The section with its `kind: distill` sources read as JSONL from `pattern` (the run's
    distill rows or pairs)."""
    where = str(Path(pattern).absolute())  # a run directory given relative to the working directory
    sources = [replace(s, kind="jsonl", path=where) if s.kind == "distill" else s for s in section.sources]
    return replace(section, sources=sources)


def prepare_chat_data(cfg: RunConfig, section, data, source: Path, tokenizer_dir: Path, data_dir: Path,
                      stats_file: Path, seq_length: int, name: str, row: str) -> dict:
    """The chat stages' preparation (sft, dpo): `tokenizer_dir` (the tokenizer at `source` with the
    section's chat template) and `data_dir` (the rows `data.prepare` checked and tokenized, with
    stats.json and kept_dropped.png); an error naming `row`s when none survived."""
    with atomic_dir(tokenizer_dir) as tmp:
        origin = template.write_chat_tokenizer(source, tmp, section.template)
    tokenizer = template.load_tokenizer(tokenizer_dir)
    langid = None
    if section.checks.language_id:
        from occi.corpora.langid import LanguageIdentifier  # loads numba: only when used

        langid = LanguageIdentifier.from_config(cfg.corpora.langid, cfg.languages, cfg.corpora.base_dir)
    with atomic_dir(data_dir) as tmp:
        stats = data.prepare(section, cfg.languages, tokenizer, seq_length, cfg.seed, langid, tmp)
        stats["template"] = origin
        atomic_write_json(tmp / "stats.json", stats)
        data.plot(stats, tmp / "kept_dropped.png")
        if stats["totals"]["kept"]:
            mark_done(tmp)
    if not stats["totals"]["kept"]:
        raise OcciError(f"{name}: no {row} survived the checks ({stats['totals']['rows_in']} rows read); "
                        f"{stats_file} says why each was dropped")
    return stats


def wait_for_data(data_dir: Path, what: str, seconds: float = 7200) -> None:
    """Waits (a rank other than 0) until rank 0 has prepared `data_dir`."""
    deadline = time.monotonic() + seconds
    while not is_done(data_dir):
        if time.monotonic() > deadline:
            raise OcciError(f"{data_dir}: rank 0 did not finish preparing the {what} in {seconds:.0f} s")
        time.sleep(2)


def _check_ready(cfg: RunConfig, run: RunDir) -> None:
    from occi.train import checkpoints  # loads torch: only when used

    if cfg.sft is None:
        raise OcciError(f"{cfg.source_file}: no `sft:` section; add one with the chat data sources")
    if not run.is_done("train") and not (is_base_run(cfg) and run.is_done("import")):
        run.require("train")
    if checkpoints.latest_iteration(run.root) is None:
        raise OcciError(f"{run.checkpoints}: no checkpoint to fine-tune; run `occi train` first")
    from occi.train.model import has_transformer_engine  # loads torch: only when used

    if cfg.sft.packing and has_transformer_engine():
        raise OcciError(f"{cfg.source_file}: sft.packing: Transformer Engine's fused attention here does not take "
                        "occi's per-conversation mask; set sft.packing: false (padding) on this machine")

    if cfg.sft.packing and run_model_config(cfg, run.root).sliding_window:
        raise OcciError(f"{cfg.source_file}: sft.packing: a sliding-window model builds its own attention mask "
                        "(packed conversations would see each other); set sft.packing: false")


def sft(cfg: RunConfig, run: RunDir) -> dict:
    """Prepares the data (once) and fine-tunes to the planned steps, or until a stop."""
    from occi.train import checkpoints, launch, stop  # loads torch: only when used

    run = RunDir.of(run)
    _check_ready(cfg, run)
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))
    if not launch.inside_launch() or rank == 0:
        stats = prepare_data(cfg, run)
    else:
        wait_for_data(run.sft_data, "SFT data")
        stats = run.read_json(run.sft_stats) or {}
    if rank == 0:
        run.sft_error.unlink(missing_ok=True)
    if launch.inside_launch():
        launch.rank_environment()
        if os.environ["RANK"] == "0":
            stop.clear(run.root)
        from occi.sft.trainer import SFTTrainer  # loads torch: only when used
        from occi.train.trainer import main  # loads torch: only when used

        code = main(str(run.config_file), str(run.root), SFTTrainer, run.sft_error)
    else:
        code = launch.run_torchrun(cfg, run, "occi.sft.trainer", run.sft_error)
    if run.sft_error.exists():
        raise OcciError(run.sft_error.read_text(encoding="utf-8").strip())
    if code != 0:
        raise OcciError(f"SFT failed (exit code {code}); the log above and {run.sft} say why")
    reached = checkpoints.latest_iteration(run.root, run.sft_checkpoints) or 0
    target = _planned_steps(cfg, run)
    summary = {"steps": reached, "target_steps": target, "complete": reached >= target,
               "conversations": stats.get("totals", {}).get("kept"), "epochs": cfg.sft.epochs,
               "hardware": launch.hardware(cfg)}
    if summary["complete"] and int(os.environ.get("RANK", "0")) == 0:
        atomic_write_json(run.sft_summary, summary)
        mark_done(run.sft)
    return summary


def _planned_steps(cfg: RunConfig, run: RunDir) -> int:
    from occi.sft import packing  # loads torch: only when used
    from occi.sft.trainer import sft_seq_length  # loads torch: only when used

    conversations = packing.Conversations.load(run.sft_data / "conversations.npz")
    seq_length = sft_seq_length(cfg, run_model_config(cfg, run.root))
    return len(packing.plan(conversations, cfg.sft.epochs, seq_length, cfg.sft.global_batch_size, cfg.sft.packing,
                            cfg.seed))


def run(cfg: RunConfig, run: RunDir, share: Share = Share()) -> StageResult:
    """The sft stage of the stage list (occi/pipeline.py)."""
    summary = sft(cfg, run)
    table = data.format_table(run.read_json(RunDir.of(run).sft_stats) or {"languages": {}, "totals": {}}) \
        if summary["complete"] else ""
    state = "complete" if summary["complete"] else "stopped early; run the same command again to continue"
    return StageResult(f"{table}\nsft: step {summary['steps']}/{summary['target_steps']} ({state}); checkpoints in "
                       f"{RunDir.of(run).sft_checkpoints}".lstrip(), complete=summary["complete"])
