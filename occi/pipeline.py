"""The stages of a run, declared once: the CLI, `occi run` and the SLURM plan are made from this list.
Running them (the lock, provenance and energy around a stage; `occi run`) is occi/execution.py.

A stage is a module with `run(cfg, run, share, **options) -> StageResult` (and, when its work is
shared over SLURM array tasks, `shard_count(cfg, run) -> int`). Adding a stage is one new module and
one entry in STAGES.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from occi import ranges
from occi.errors import OcciError


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
    """Its output folder under the run directory (`RunDir.stage_folder`); the folder's _DONE marker
    means complete."""
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
    card_section: str | None = None
    """"module:function" `(cfg, run, out_dir) -> str`: its section of the model card (Markdown with
    its own `## ` heading(s), "" when there is nothing to show); None: it adds none."""
    card_part: Literal["model", "data", "training", "results", "use"] = "results"
    """Where on the card its section goes (occi/report/card.py: CARD_PARTS), after the sections of the
    stages before it in STAGES that go to the same part."""
    fetch_items: str | None = None
    """"module:function" `(cfg) -> list[occi.hub.Item]`: what it reads from the Hugging Face hub, for
    `occi fetch` and the offline checks; None: nothing."""
    results: tuple[tuple[str, str], ...] = ()
    """(label, path) of the results `occi run` names when it ends: a RunDir property, or a path
    under the run directory."""

    @property
    def sharded(self) -> bool:
        return self.shards_over != "nothing"

    def applies(self, cfg) -> bool:
        return self.when is None or _function(self.when)(cfg)

    def section(self, cfg, run, out_dir) -> str:
        """Its model card section ("" without one)."""
        return _function(self.card_section)(cfg, run, out_dir) if self.card_section else ""

    def items(self, cfg) -> list:
        """What it reads from the hub (occi/hub.py items)."""
        return list(_function(self.fetch_items)(cfg)) if self.fetch_items else []

    def shard_count(self, cfg, run, step: ArrayStep | None = None) -> int:
        """How many tasks can share an array step's work (before the cluster's array limit)."""
        count = getattr(importlib.import_module(self.module), (step or self.array_steps[0]).tasks)
        return max(1, count(cfg, run))


def _function(spec: str):
    """The function a "module:function" declaration names, its module imported now."""
    module, function = spec.split(":")
    return getattr(importlib.import_module(module), function)


_CORPUS_KEYS = ("languages", "corpora", "seed", "heldout_fraction", "heldout_max_docs")
"""What the corpora, and every stage sampling them, read: which documents exist and which are held out."""

STAGES = [
    Stage("corpora", ("corpora", "build"), "read, filter and deduplicate the run's sources", "corpora",
          "occi.corpora.build", shards_over="shards", join_step="finish", reads=_CORPUS_KEYS,
          results=(("corpora", "corpora_stats"),),
          card_section="occi.report.data_section:card_section", card_part="data",
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
          results=(("tokenizer report", "tokenizer/report.md"),),
          card_section="occi.report.tokenizer_section:card_section", card_part="data",
          inputs=("corpora",)),
    Stage("import", ("import",), "an open Hugging Face base -> checkpoints/iter_0000000 at the run's TP/PP "
          "(runs with `model: {base: ...}` only)", "base", "occi.train.hf_import", when="occi.basemodel:is_base_run", exclusive=True,
          reads=("model", "tokenizer", "train.tensor_parallel", "train.pipeline_parallel"), inputs=("tokenizer",),
          card_section="occi.report.base_section:card_section", card_part="model"),
    Stage("data", ("data", "prepare"), "corpora -> data/<lang>_text_document.{bin,idx} + blend.json", "data",
          "occi.data.prepare", shards_over="languages",
          array_steps=(ArrayStep("tokenize"),), join_step="blend", reads=(*_CORPUS_KEYS, "data"),
          inputs=("corpora", "tokenizer"), done_markers=("_DONE", "*.json")),  # <lang>.json: a language is done
    Stage("train", ("train",), "megatron-core pretraining (launches torchrun, or runs as one rank)", "train",
          "occi.train.launch", slurm="train", exclusive=True, reads=("model", "train", "seed"),
          results=(("training log", "train/log.jsonl"),),
          card_section="occi.report.training_section:card_section", card_part="training",
          inputs=("data", "import")),
    Stage("distill", ("distill",), "a teacher's answers to the prompts of each language -> SFT rows in "
          "<run>/distill (runs with a `distill:` section only)", "distill", "occi.chat.distill",
          shards_over="batches", slurm="gpu", array_steps=(ArrayStep("generate"),), join_step="join",
          when="occi.chat.distill:has_distill", reads=("distill", "languages", "seed", "corpora.langid"),
          fetch_items="occi.chat.distill:fetch_items",
          done_markers=("_DONE", "parts/*/*.jsonl")),
    Stage("sft", ("sft",), "supervised fine-tuning on chat data (megatron-core; runs with an `sft:` section only)",
          "sft", "occi.sft.stage", slurm="train", when="occi.sft.stage:has_sft", exclusive=True,
          reads=("sft", "model", "train", "seed", "languages", "corpora.langid"), inputs=("train", "import", "distill"),
          results=(("chat data", "sft_stats"), ("SFT log", "sft/log.jsonl")),
          card_section="occi.report.sft_section:card_section", card_part="training"),
    Stage("dpo", ("dpo",), "preference tuning on chosen/rejected pairs (DPO or SimPO, megatron-core; runs with a "
          "`dpo:` section only)", "dpo", "occi.dpo.stage", slurm="train", when="occi.dpo.stage:has_dpo", exclusive=True,
          reads=("dpo", "model", "train", "seed", "languages", "corpora.langid"),
          inputs=("train", "import", "sft", "distill"),
          card_section="occi.report.dpo_section:card_section", card_part="training"),
    Stage("export", ("export",), "latest checkpoint -> transformers model in <run>/hf (or GGUF files in <run>/gguf)",
          "hf", "occi.train.export", exclusive=True, reads=("model", "sft", "dpo", "seed"), inputs=("train", "sft", "dpo"),
          results=(("model", "hf"),), card_section="occi.report.gguf_section:card_section", card_part="use",
          options=(Option("--format", "hf: <run>/hf from the checkpoint; gguf: <run>/gguf from <run>/hf, for llama.cpp "
                          "and Ollama", default="hf", choices=("hf", "gguf")),
                   Option("--quant", "GGUF type(s), comma-separated: f16 (default), bf16, q8_0, q4_0, q4_k_m, ..."))),
    Stage("merge", ("merge",), "exported models, the run's stage models or its last checkpoints merged (linear, "
          "task arithmetic, TIES) -> <run>/merged (runs with a `merge:` section only)", "merged", "occi.merge.stage",
          when="occi.merge.stage:has_merge", exclusive=True, reads=("merge",), inputs=("train", "sft", "dpo", "export"),
          card_section="occi.report.merge_section:merge_section", card_part="training"),
    Stage("eval", ("eval",), "per-language lm-eval benchmarks of the run's model (or any)", "eval",
          "occi.eval.runner", shards_over="cells", slurm="gpu", reads=("eval", "languages", "card.model_name", "seed"),
          inputs=("export", "merge"), results=(("evaluation", "eval"),), card_section="occi.report.eval_section:card_section",
          array_steps=(ArrayStep("languages"),), join_step="table",
          options=(Option("--suite", "one suite (default: the config's)", choices=("offline", "eu-leaderboard", "fidelity", "ifeval")),
                   Option("--model", "evaluate this model (PATH_OR_HF_ID) instead of <run>/hf"))),
    Stage("report", ("card",), "the leaderboard and model card in <run>/report (and publish with --push)", "report",
          "occi.report.card", inputs=("eval",),
          results=(("leaderboard", "report/leaderboard.md"), ("model card", "card")),
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
    """Removes the completion markers of the stages that `keys` affect in the run directory `run`
    (a RunDir); returns the names of those that had any (the stages that will now run again)."""
    again = []
    for stage in affected_stages(keys):
        folder = run.stage_folder(stage.name)
        markers = [path for pattern in stage.done_markers for path in folder.glob(pattern) if path.is_file()]
        for marker in sorted(markers, key=lambda path: path != folder / "_DONE"):  # the stage's own marker first
            marker.unlink(missing_ok=True)
        if markers:
            again.append(stage.name)
    return again


def stages_of(cfg) -> list[Stage]:
    """The stages this run has (the import stage only when it starts from a base model)."""
    return [stage for stage in STAGES if stage.applies(cfg)]
