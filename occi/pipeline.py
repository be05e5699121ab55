"""The stages of a run, declared once: the CLI, `occi run` and the SLURM plan are made from this list.

A stage is a module with `run(cfg, run, share, **options) -> StageResult` (and, when its work is
shared over SLURM array tasks, `shard_count(cfg, run) -> int`). Adding a stage is one new module and
one entry in STAGES.
"""
from __future__ import annotations

import importlib
import resource
import time
from dataclasses import dataclass
from typing import Any, Literal

from occi import ranges
from occi.errors import OcciError
from occi.sharding import Share


@dataclass
class StageResult:
    summary: str
    """What the stage did, as printed after it (a table or a line)."""
    complete: bool = True
    """False when the stage stopped early (one rank's share, a training stopped by a signal)."""


@dataclass(frozen=True)
class Option:
    flag: str
    """The command-line flag (`--suite`); the run function receives it as a keyword argument."""
    help: str
    """One line for --help."""
    default: Any = None
    """Value when the flag is not given."""
    type: Any = None
    """argparse type (str when None), ignored for flags."""
    choices: tuple | None = None
    """Allowed values, if limited."""
    is_flag: bool = False
    """A switch without a value (store_true)."""

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class ArrayStep:
    name: str
    """The SLURM step's name after the stage's (`filter`: corpora-filter)."""
    options: tuple[str, ...] = ()
    """Extra arguments of its command (`--phase filter`)."""
    tasks: str = "shard_count"
    """The stage module's function `(cfg, run) -> int` giving how many array tasks can share it."""


@dataclass(frozen=True)
class Stage:
    name: str
    """The stage's name in progress lines, plans and `RunDir.require`."""
    command: tuple[str, ...]
    """Its subcommand (`occi corpora build`)."""
    help: str
    """One line for --help."""
    folder: str
    """The RunDir property of its output folder; the folder's _DONE marker means complete."""
    module: str
    """The module holding `run` (and `shard_count` when sharded); imported only when used."""
    shards_over: Literal["nothing", "shards", "languages", "cells", "batches"] = "nothing"
    """What --rank/--world-size split: nothing, the corpus shards, the languages, the eval cells or
    the prompt batches."""
    slurm: Literal["cpu", "gpu", "train"] = "cpu"
    """Resources of its SLURM job (or array tasks): CPUs, one device per task, or the training nodes."""
    options: tuple[Option, ...] = ()
    """Its own command-line options beyond CONFIG, --run-dir, --rank and --world-size."""
    array_steps: tuple[ArrayStep, ...] = (ArrayStep("shards"),)
    """The SLURM job arrays of a sharded stage, in order (each waits for the one before)."""
    join_step: str = "join"
    """The name of the single job that runs the stage's command without --rank after its arrays."""
    when: str | None = None
    """"module:function" deciding from the config whether a run has this stage; None: every run."""
    reads: tuple[str, ...] = ("*",)
    """The config keys its output depends on (a section, `train`, or one key, `train.steps`; "*":
    every key): `--reconfigure` of one of them makes the stage run again."""
    inputs: tuple[str, ...] = ()
    """The stages whose outputs it reads: when one of them runs again, so does this one."""
    done_markers: tuple[str, ...] = ("**/_DONE",)
    """Files under its folder (glob patterns) that say its work is done; `--reconfigure` removes
    them so the stage runs again (its other files, checkpoints included, are kept)."""
    exclusive: bool = False
    """It writes what one process at a time may write (checkpoints, the exported model): it holds
    the run's lock (occi/runlock.py) while it runs."""

    @property
    def sharded(self) -> bool:
        return self.shards_over != "nothing"

    def applies(self, cfg) -> bool:
        if self.when is None:
            return True
        module, function = self.when.split(":")
        return getattr(importlib.import_module(module), function)(cfg)

    def run(self, cfg, run, share: Share = Share(), **options) -> StageResult:
        if self.exclusive:
            from occi import runlock

            with runlock.hold(run, " ".join(("occi", *self.command))):
                return self._run(cfg, run, share, **options)
        return self._run(cfg, run, share, **options)

    def _run(self, cfg, run, share: Share, **options) -> StageResult:
        from occi import energy, provenance
        from occi.rundir import RunDir

        module = importlib.import_module(self.module)
        if self.name != "report":  # the card describes the model; writing it is not part of making it
            provenance.record(RunDir.of(run).provenance, self.name)
        if self.slurm == "cpu":
            return module.run(cfg, run, share, **options)
        with energy.meter(RunDir.of(run).energy, self.name):  # device jobs record their hours and energy
            return module.run(cfg, run, share, **options)

    def shard_count(self, cfg, run, step: ArrayStep | None = None) -> int:
        """How many tasks can share an array step's work (before the cluster's array limit)."""
        count = getattr(importlib.import_module(self.module), (step or self.array_steps[0]).tasks)
        return max(1, count(cfg, run))


_CORPUS_KEYS = ("languages", "corpora", "seed", "heldout_fraction", "heldout_max_docs")
"""What the corpora, and every stage sampling them, read: which documents exist and which are held out."""

STAGES = [
    Stage("corpora", ("corpora", "build"), "read, filter and deduplicate the run's sources", "corpora",
          "occi.corpora.build", shards_over="shards", join_step="finish", reads=_CORPUS_KEYS,
          array_steps=(ArrayStep("filter", ("--phase", "filter")),
                       ArrayStep("buckets", ("--phase", "buckets"), "bucket_count"),
                       ArrayStep("clusters", ("--phase", "clusters"), "language_count"),
                       ArrayStep("write", ("--phase", "write"))),
          options=(Option("--phase", "one phase (with --rank/--world-size: this rank's share of it): filter "
                          "(shards), buckets (dedup partitions), clusters (languages), write (shards), finish (stats, "
                          "folders); dedup: every phase after filter; all: every phase",
                          default="all", choices=("all", "filter", "buckets", "clusters", "write", "finish", "dedup")),
                   Option("--workers", "worker processes (default: the recipe's)",
                          type=ranges.argument(ranges.at_least(0))))),
    Stage("tokenizer", ("tokenizer", "train"), "sample the corpora, train SentencePiece, write HF files + report",
          "tokenizer", "occi.tokenizer.train", reads=(*_CORPUS_KEYS, "tokenizer", "model.base", "model.revision"),
          inputs=("corpora",)),
    Stage("import", ("import",), "an open Hugging Face base -> checkpoints/iter_0000000 at the run's TP/PP "
          "(runs with `model: {base: ...}` only)", "base", "occi.train.hf_import", when="occi.basemodel:is_base_run", exclusive=True,
          reads=("model", "tokenizer", "train.tensor_parallel", "train.pipeline_parallel"), inputs=("tokenizer",)),
    Stage("data", ("data", "prepare"), "corpora -> data/<lang>_text_document.{bin,idx} + blend.json", "data",
          "occi.data.prepare", shards_over="languages",
          array_steps=(ArrayStep("tokenize"),), join_step="blend", reads=(*_CORPUS_KEYS, "data"),
          inputs=("corpora", "tokenizer"), done_markers=("_DONE", "*.json")),  # <lang>.json: a language is done
    Stage("train", ("train",), "megatron-core pretraining (launches torchrun, or runs as one rank)", "train",
          "occi.train.launch", slurm="train", exclusive=True, reads=("model", "train", "seed"),
          inputs=("data", "import")),
    Stage("distill", ("distill",), "a teacher's answers to the prompts of each language -> SFT rows in "
          "<run>/distill (runs with a `distill:` section only)", "distill", "occi.chat.distill",
          shards_over="batches", slurm="gpu", array_steps=(ArrayStep("generate"),), join_step="join",
          when="occi.chat.distill:has_distill", reads=("distill", "languages", "seed"),
          done_markers=("_DONE", "parts/*/*.jsonl")),
    Stage("sft", ("sft",), "supervised fine-tuning on chat data (megatron-core; runs with an `sft:` section only)",
          "sft", "occi.sft.stage", slurm="train", when="occi.sft.stage:has_sft", exclusive=True,
          reads=("sft", "model", "train", "seed", "languages", "corpora.langid"), inputs=("train", "import", "distill")),
    Stage("export", ("export",), "latest checkpoint -> transformers model in <run>/hf (or GGUF files in <run>/gguf)",
          "hf", "occi.train.export", exclusive=True, reads=("model", "sft", "seed"), inputs=("train", "sft"),
          options=(Option("--format", "hf: <run>/hf from the checkpoint; gguf: <run>/gguf from <run>/hf, for llama.cpp "
                          "and Ollama", default="hf", choices=("hf", "gguf")),
                   Option("--quant", "GGUF type(s), comma-separated: f16 (default), bf16, q8_0, q4_0, q4_k_m, ..."))),
    Stage("eval", ("eval",), "per-language lm-eval benchmarks of the run's model (or any)", "eval",
          "occi.eval.runner", shards_over="cells", slurm="gpu", reads=("eval", "languages", "card.model_name", "seed"),
          inputs=("export",),
          array_steps=(ArrayStep("languages"),), join_step="table",
          options=(Option("--suite", "one suite (default: the config's)", choices=("offline", "eu-leaderboard", "fidelity")),
                   Option("--model", "evaluate this model (PATH_OR_HF_ID) instead of <run>/hf"))),
    Stage("report", ("card",), "the leaderboard and model card in <run>/report (and publish with --push)", "report",
          "occi.report.card", inputs=("eval",),
          options=(Option("--out", "write only the card, to this FILE (the run's report folder is left as it is)"),
                   Option("--push", "upload hf/, the card, GGUF files and the leaderboard (what changed) to this Hugging Face model REPO"),
                   Option("--dry-run", "with --push: list what would be uploaded, upload nothing", is_flag=True),
                   Option("--allow-incomplete", "with --push: publish even if the training-content summary has "
                          "to-do lines (an empty `provider:` field)", is_flag=True))),
]


def stage_named(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise OcciError(f"unknown stage {name!r}; the stages are {', '.join(s.name for s in STAGES)}")


def peak_memory_mb() -> float:
    """Peak resident memory of this process and of its finished children (torchrun ranks), MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _touches(read: str, key: str) -> bool:
    """True when config key `key` (dotted) is, contains or lies inside the setting `read`."""
    return read == "*" or key == read or key.startswith(read + ".") or read.startswith(key + ".")


def affected_stages(keys: list[str]) -> list[Stage]:
    """The stages that must run again after the config keys `keys` changed: those reading one of
    them, and every stage reading the output of one of those."""
    affected: list[Stage] = []
    for stage in STAGES:  # in pipeline order, so a stage's inputs are decided before it
        if (any(_touches(read, key) for read in stage.reads for key in keys)
                or any(other.name in stage.inputs for other in affected)):
            affected.append(stage)
    return affected


def invalidate(run, keys: list[str]) -> list[str]:
    """Removes the completion markers of the stages that `keys` affect; returns the names of
    those that had any (the stages that will now run again)."""
    from occi.rundir import RunDir

    run = RunDir.of(run)
    again = []
    for stage in affected_stages(keys):
        folder = getattr(run, stage.folder)
        markers = [path for pattern in stage.done_markers for path in folder.glob(pattern) if path.is_file()]
        for marker in sorted(markers, key=lambda path: path != folder / "_DONE"):  # the stage's own marker first
            marker.unlink(missing_ok=True)
        if markers:
            again.append(stage.name)
    return again


def stages_of(cfg) -> list[Stage]:
    """The stages this run has (the import stage only when it starts from a base model)."""
    return [stage for stage in STAGES if stage.applies(cfg)]


def run_all(cfg, run) -> None:
    """Runs the stages in order, holding the run's lock; a completed stage is reported and skipped."""
    from occi import runlock

    with runlock.hold(run, f"occi run {cfg.name}"):
        _run_stages(cfg, run)


def _run_stages(cfg, run) -> None:
    from occi.preflight.manifest import check_fetched, is_offline

    started_run = time.monotonic()
    if is_offline():  # what was not fetched stops the run before any work, not in its third stage
        check_fetched(cfg, run)
    stages = stages_of(cfg)
    print(f"occi run {cfg.name}: {len(stages)} stages, run directory {run.root}", flush=True)
    for number, stage in enumerate(stages, 1):
        prefix = f"[{number}/{len(stages)}] {stage.name}"
        folder = getattr(run, stage.folder)
        if run.is_done(stage.name):
            print(f"{prefix}: already done ({folder})", flush=True)
            continue
        print(f"{prefix}: running", flush=True)
        started = time.monotonic()
        result = stage.run(cfg, run)
        print(result.summary)
        if not result.complete:
            raise OcciError(f"the {stage.name} stage stopped before completing; run the same command again to continue")
        print(f"{prefix}: done in {time.monotonic() - started:.1f} s -> {folder}", flush=True)
    print(f"\nocci run {cfg.name}: all stages done in {time.monotonic() - started_run:.1f} s, "
          f"peak memory {peak_memory_mb():,.0f} MB")
    for label, path in _results(run):
        print(f"  {label:<18} {path}")


def _results(run) -> list[tuple[str, Any]]:
    """Where a run's results are, for the final summary (those that exist)."""
    candidates = [
        ("corpora", run.corpora_stats),
        ("tokenizer report", run.tokenizer / "report.md"),
        ("training log", run.train / "log.jsonl"),
        ("chat data", run.sft_stats),
        ("SFT log", run.sft / "log.jsonl"),
        ("model", run.hf),
        ("evaluation", run.eval),
        ("leaderboard", run.report / "leaderboard.md"),
        ("model card", run.card),
    ]
    return [(label, path) for label, path in candidates if path.exists()]
