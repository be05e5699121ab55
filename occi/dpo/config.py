"""The `dpo:` section of a run config: preference-pair sources, their checks, the loss and the schedule."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from occi import languages, ranges
from occi.corpora.config import DedupConfig, check_location


@dataclass
class PreferenceSourceConfig:
    name: str
    """Label of this source in stats.json."""
    kind: Literal["jsonl", "parquet", "hub", "distill"]
    """jsonl (optionally .gz/.zst/.bz2), parquet, hub (any `datasets.load_dataset` path), or
    distill (this run's `occi distill` pairs, <run>/distill/pairs/<lang>.jsonl, from `distill.pairs`;
    no path; set checks.rejected_language: false, as their rejected answers may be in another language)."""
    path: str | None = None
    """jsonl/parquet: a glob of local files, relative to the config file."""
    dataset: str | None = None
    """hub: the dataset id or datasets builder name."""
    subset: str | None = None
    """hub: the configuration name."""
    split: str = "train"
    """hub: the split to read."""
    data_files: list[str] | None = None
    """hub: files for a builder such as "json" or "parquet"; local ones relative to the config."""
    prompt_field: str = "prompt"
    """Field holding the prompt: a string (one user turn) or a list of {role, content} turns ending with a user turn."""
    chosen_field: str = "chosen"
    """Field holding the preferred answer: a string or a list of assistant turns."""
    rejected_field: str = "rejected"
    """Field holding the dispreferred answer: a string or a list of assistant turns."""
    language: str | None = None
    """The language of every pair of this source; None: each row's `language` field."""
    weight: float = 1.0
    """How often each pair is seen per epoch: 2 repeats it, 0.5 keeps every second one (seeded hash)."""
    limit: int | None = None
    """At most this many rows read from this source."""
    license: str | None = None
    """The pairs' licence (an SPDX identifier such as CC-BY-4.0), stated in the training-content summary."""

    def __post_init__(self) -> None:
        check_location(self.kind, self.dataset, self.path)
        ranges.check(self, {"weight": ranges.at_least(0), "limit": ranges.at_least(1)})
        if self.language is not None:
            languages.get(self.language)


@dataclass
class PreferenceChecksConfig:
    language_id: bool = True
    """Identify the language of the prompt, the chosen and the rejected answer separately (the corpora
    stage's language ID); a pair with any of them in another language than declared is dropped."""
    rejected_language: bool = True
    """Also identify the rejected answer's language; false for pairs whose rejected answer is in
    another language on purpose (language-fidelity pairs)."""
    min_langid_chars: int = 24
    """Texts shorter than this are not identified (language ID guesses on a few words)."""
    dedup: DedupConfig = field(default_factory=DedupConfig)
    """Exact and MinHash near-duplicate removal of prompts, within each language."""
    too_long: Literal["drop", "truncate"] = "drop"
    """A prompt plus answer longer than the sequence: drop the pair, or keep the first `seq_length`
    tokens of each sequence (TRL's keep_start; dropped when the prompt alone fills the sequence)."""

    def __post_init__(self) -> None:
        ranges.check(self, {"min_langid_chars": ranges.at_least(0)})


@dataclass
class DPOConfig:
    sources: list[PreferenceSourceConfig]
    """Preference data: rows with a prompt, a chosen and a rejected answer, and an optional `language`."""
    checks: PreferenceChecksConfig = field(default_factory=PreferenceChecksConfig)
    """Read-time checks: language ID, prompt dedup, too-long pairs."""
    loss: Literal["sigmoid", "simpo"] = "sigmoid"
    """sigmoid: DPO, -log sigmoid(beta x (policy - reference log-ratio of chosen minus rejected));
    simpo: SimPO, reference-free, -log sigmoid(beta x (mean log-prob of chosen - of rejected) - gamma)."""
    beta: float = 0.1
    """Strength of the preference (DPO: of the implicit KL penalty; SimPO paper: 2.0-2.5)."""
    simpo_gamma: float = 0.5
    """SimPO's target margin (its paper's gamma, not gamma/beta); unused by sigmoid."""
    reference: Literal["precomputed", "live"] = "precomputed"
    """sigmoid: the reference model's log-probabilities computed once before the first step and
    stored in <run>/dpo/reference_logps.npy, or recomputed at every step from a frozen copy of the
    starting weights kept in memory (twice the weights' memory)."""
    epochs: int = 1
    """Passes over the pairs."""
    seq_length: int | None = None
    """Tokens per sequence (prompt + one answer); None: the model's sequence length (never more)."""
    micro_batch_size: int = 2
    """Pairs per forward pass on one data-parallel rank (twice as many sequences)."""
    global_batch_size: int = 8
    """Pairs per optimizer step over all ranks (a multiple of micro batch x data parallel)."""
    lr: float = 5e-7
    """Peak learning rate."""
    min_lr: float = 0.0
    """Learning rate at the end of the decay."""
    warmup_fraction: float = 0.1
    """Share of the steps spent in linear warmup."""
    lr_schedule: Literal["cosine", "linear", "constant"] = "linear"
    """Decay after warmup."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    save_interval: int = 100
    """Steps between checkpoints (and at the end)."""
    log_interval: int = 1
    """Steps between log lines."""
    keep_last: int = 2
    """DPO checkpoints kept."""
    stop_after_steps: int | None = None
    """Stop (with a checkpoint) after this many steps in this launch: tests, chained jobs."""
    template: Literal["auto", "occi"] = "auto"
    """auto: the SFT tokenizer's chat template (or the base model's), else occi's; occi: always occi's."""
    base_dir: str = ""
    """Folder that relative source paths are resolved against (set by the loader)."""

    def __post_init__(self) -> None:
        one = ranges.at_least(1)
        if not self.sources:
            raise ValueError("sources: list at least one preference data source")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError("sources: two sources have the same name")
        ranges.check(self, {"beta": ranges.DPO_BETA, "simpo_gamma": ranges.at_least(0), "epochs": one,
                            "seq_length": ranges.Range(8, ranges.SEQ_LENGTH.high), "micro_batch_size": one,
                            "global_batch_size": one, "lr": ranges.POSITIVE, "min_lr": ranges.at_least(0),
                            "warmup_fraction": ranges.Range(0.0, 1.0, high_open=True),
                            "weight_decay": ranges.at_least(0), "save_interval": one, "log_interval": one,
                            "keep_last": one, "stop_after_steps": one})
        ranges.check_order(self, "min_lr", "lr")
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(f"global_batch_size {self.global_batch_size} is not a multiple of "
                             f"micro_batch_size {self.micro_batch_size}")
