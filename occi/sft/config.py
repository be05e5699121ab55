"""The `sft:` section of a run config: chat data sources, their checks, and the fine-tuning schedule."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from occi import languages, ranges
from occi.corpora.config import DedupConfig, check_location


@dataclass
class ChatSourceConfig:
    name: str
    """Label of this source in stats.json and in each conversation's provenance."""
    kind: Literal["jsonl", "parquet", "hub", "distill"]
    """jsonl (optionally .gz/.zst/.bz2), parquet, hub (any `datasets.load_dataset` path), or
    distill (this run's `occi distill` rows, <run>/distill/<lang>.jsonl; no path)."""
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
    messages_field: str = "messages"
    """Field holding the list of {role, content} turns."""
    language: str | None = None
    """The language of every conversation of this source; None: each row's `language` field."""
    weight: float = 1.0
    """How often each conversation is seen per epoch: 2 repeats it, 0.5 keeps every second one
    (chosen by a seeded hash, so the choice does not depend on reading order)."""
    limit: int | None = None
    """At most this many rows read from this source."""
    license: str | None = None
    """The conversations' licence (an SPDX identifier such as CC-BY-4.0), stated in the training-content summary."""

    def __post_init__(self) -> None:
        check_location(self.kind, self.dataset, self.path)
        ranges.check(self, {"weight": ranges.at_least(0), "limit": ranges.at_least(1)})
        if self.language is not None:
            languages.get(self.language)


@dataclass
class ChatChecksConfig:
    language_id: bool = True
    """Identify the language of the prompt and of the answer separately (the corpora stage's
    language ID); a conversation whose prompt or answer is in another language than declared is
    dropped (prompt_language, answer_language)."""
    min_langid_chars: int = 24
    """Texts shorter than this are not identified (language ID guesses on a few words)."""
    dedup: DedupConfig = field(default_factory=DedupConfig)
    """Exact and MinHash near-duplicate removal of prompts, within each language."""
    too_long: Literal["drop", "truncate"] = "drop"
    """A conversation longer than the sequence: drop it, or cut it after the last assistant turn
    that fits (dropped when not even the first answer fits)."""

    def __post_init__(self) -> None:
        ranges.check(self, {"min_langid_chars": ranges.at_least(0)})


@dataclass
class SFTConfig:
    sources: list[ChatSourceConfig]
    """Chat data: rows with `messages` (role system/user/assistant, content), optional `language`,
    optional reasoning (`<think>...</think>` in the assistant content, or a `reasoning` field)."""
    checks: ChatChecksConfig = field(default_factory=ChatChecksConfig)
    """Read-time checks: language ID, prompt dedup, too-long conversations."""
    epochs: int = 3
    """Passes over the data (s1: 5 epochs over 1,000 examples)."""
    packing: bool = True
    """Pack several conversations into one sequence (positions and attention reset at each
    conversation); off: one conversation per sequence, padded."""
    seq_length: int | None = None
    """Tokens per sequence; None: the model's sequence length (never more)."""
    micro_batch_size: int = 4
    """Sequences per forward pass on one data-parallel rank."""
    global_batch_size: int = 8
    """Sequences per optimizer step over all ranks (a multiple of micro batch x data parallel)."""
    lr: float = 1e-4
    """Peak learning rate."""
    min_lr: float = 0.0
    """Learning rate at the end of the decay."""
    warmup_fraction: float = 0.05
    """Share of the steps spent in linear warmup."""
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Decay after warmup."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    save_interval: int = 100
    """Steps between checkpoints (and at the end)."""
    log_interval: int = 1
    """Steps between log lines."""
    keep_last: int = 2
    """SFT checkpoints kept."""
    stop_after_steps: int | None = None
    """Stop (with a checkpoint) after this many steps in this launch: tests, chained jobs."""
    template: Literal["auto", "occi"] = "auto"
    """auto: the base model's chat template where its tokenizer has one, else occi's; occi: always occi's."""
    max_new_tokens: int = 256
    """generation_config.json of the exported chat model: default answer length."""
    base_dir: str = ""
    """Folder that relative source paths are resolved against (set by the loader)."""

    def __post_init__(self) -> None:
        one = ranges.at_least(1)
        if not self.sources:
            raise ValueError("sources: list at least one chat data source")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError("sources: two sources have the same name")
        ranges.check(self, {"epochs": one, "seq_length": ranges.Range(8, ranges.SEQ_LENGTH.high), "micro_batch_size": one,
                            "global_batch_size": one, "lr": ranges.POSITIVE, "min_lr": ranges.at_least(0),
                            "warmup_fraction": ranges.Range(0.0, 1.0, high_open=True),
                            "weight_decay": ranges.at_least(0), "save_interval": one, "log_interval": one,
                            "keep_last": one, "stop_after_steps": one, "max_new_tokens": one})
        ranges.check_order(self, "min_lr", "lr")
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(f"global_batch_size {self.global_batch_size} is not a multiple of "
                             f"micro_batch_size {self.micro_batch_size}")
