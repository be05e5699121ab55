"""`occi run`: every stage built so far, in order, skipping the completed ones."""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from occi.config import RunConfig, write_resolved
from occi.errors import OcciError
from occi.fsutil import is_done


@dataclass(frozen=True)
class Stage:
    name: str
    """Name shown in progress lines."""
    folder: str
    """The stage's folder in the run directory; its _DONE marker means complete."""
    run: Callable[[RunConfig, Path], str]
    """Runs the stage; returns a one-paragraph summary to print."""


def _corpora(cfg: RunConfig, run_dir: Path) -> str:
    from occi.corpora import build, stats

    result = build.build(cfg.corpora, cfg.languages, run_dir)
    return stats.format_table(result)


def _tokenizer(cfg: RunConfig, run_dir: Path) -> str:
    from occi.tokenizer import train

    return train.summary(train.train(cfg, run_dir))


def _data(cfg: RunConfig, run_dir: Path) -> str:
    from occi.data import prepare

    return prepare.format_blend(prepare.prepare(cfg, run_dir))


def _train(cfg: RunConfig, run_dir: Path) -> str:
    from occi.train import launch

    summary = launch.train(cfg, run_dir)
    if not summary["complete"]:
        raise OcciError(f"training stopped at step {summary['steps']} of {summary['target_steps']}; "
                        "run the same command again to continue")
    return f"trained {summary['steps']} steps; checkpoints in {run_dir / 'checkpoints'}"


def _import(cfg: RunConfig, run_dir: Path) -> str:
    from occi.train import hf_import

    return hf_import.run(cfg, run_dir)


def _export(cfg: RunConfig, run_dir: Path) -> str:
    from occi.train import export

    return f"transformers model: {export.export(cfg, run_dir)}"


def _eval(cfg: RunConfig, run_dir: Path) -> str:
    from occi.eval import runner
    from occi.train.hf_import import is_base_run, resolve

    summary = ""
    if is_base_run(cfg):  # the base on the same cells, for the card's side-by-side table
        summary = "base model:\n" + runner.format_table(runner.evaluate(cfg, run_dir, model=str(resolve(cfg.model)))) + "\n"
    return summary + runner.format_table(runner.evaluate(cfg, run_dir))


def _report(cfg: RunConfig, run_dir: Path) -> str:
    import json

    from occi.eval.runner import format_table
    from occi.fsutil import atomic_write_text, mark_done
    from occi.report import card

    table_file = run_dir / "eval" / "table-hf.json"
    if table_file.exists():  # this model's per-language results, as the leaderboard shows them
        table = format_table(json.loads(table_file.read_text(encoding="utf-8")))
        atomic_write_text(run_dir / "report" / "leaderboard.md", f"# {card.model_name(cfg)}\n\n{table}\n")
    path = card.write_card(cfg, run_dir)
    mark_done(run_dir / "report")
    return f"model card: {path}"


STAGES = [
    Stage("corpora", "corpora", _corpora),
    Stage("tokenizer", "tokenizer", _tokenizer),
    Stage("import", "base", _import),  # only for `model: {base: ...}` (see applies)
    Stage("data", "data", _data),
    Stage("train", "train", _train),
    Stage("export", "hf", _export),
    Stage("eval", "eval", _eval),
    Stage("report", "report", _report),
]


def peak_memory_mb() -> float:
    """Peak resident memory of this process and of its finished children (torchrun ranks), MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def applies(stage: Stage, cfg: RunConfig) -> bool:
    """Whether a run has this stage: import only when the model is a base."""
    from occi.train.hf_import import is_base_run

    return stage.name != "import" or is_base_run(cfg)


def run_all(cfg: RunConfig, run_dir: Path) -> None:
    """Runs the stages in order; a completed stage is reported and skipped."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_resolved(cfg, run_dir)
    started_run = time.monotonic()
    stages = [stage for stage in STAGES if applies(stage, cfg)]
    print(f"occi run {cfg.name}: {len(stages)} stages, run directory {run_dir}", flush=True)
    for number, stage in enumerate(stages, 1):
        prefix = f"[{number}/{len(stages)}] {stage.name}"
        if is_done(run_dir / stage.folder):
            print(f"{prefix}: already done ({run_dir / stage.folder})", flush=True)
            continue
        print(f"{prefix}: running", flush=True)
        started = time.monotonic()
        summary = stage.run(cfg, run_dir)
        print(summary)
        print(f"{prefix}: done in {time.monotonic() - started:.1f} s -> {run_dir / stage.folder}", flush=True)
    print(f"\nocci run {cfg.name}: all stages done in {time.monotonic() - started_run:.1f} s, "
          f"peak memory {peak_memory_mb():,.0f} MB")
    for label, path in _results(run_dir):
        print(f"  {label:<18} {path}")


def _results(run_dir: Path) -> list[tuple[str, Path]]:
    """Where a run's results are, for the final summary (those that exist)."""
    candidates = [
        ("corpora", run_dir / "corpora" / "stats.json"),
        ("tokenizer report", run_dir / "tokenizer" / "report.md"),
        ("training log", run_dir / "train" / "log.jsonl"),
        ("model", run_dir / "hf"),
        ("evaluation", run_dir / "eval"),
        ("leaderboard", run_dir / "report" / "leaderboard.md"),
        ("model card", run_dir / "report" / "MODEL_CARD.md"),
    ]
    return [(label, path) for label, path in candidates if path.exists()]
