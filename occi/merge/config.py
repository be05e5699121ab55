"""The `merge:` section of a run config: which models to merge (exported folders, the run's own
stage models, or its last checkpoints), how, and with which weights."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from occi import ranges

@dataclass
class CheckpointAverage:
    of: Literal["train", "sft", "dpo"]
    """The stage of this run whose checkpoints are averaged: train (pretraining), sft or dpo."""
    last: int = 2
    """How many of its newest checkpoints (each exported to <run>/stage_models/<stage>-iter_N)."""

    def __post_init__(self) -> None:
        ranges.check(self, {"last": ranges.MERGE_CHECKPOINTS})


@dataclass
class MergeConfig:
    models: list[str] | None = None
    """The models to merge: exported transformers model folders (`occi export` writes <run>/hf),
    relative to the config file, or base, sft, dpo: this run's newest checkpoint of pretraining (or
    the imported base), SFT or DPO (a folder of one of these names: ./base). All of one architecture
    and shape. None: `checkpoints` says which."""
    checkpoints: CheckpointAverage | None = None
    """Instead of `models`: the average of the newest checkpoints of one of this run's stages
    (`{of: sft, last: 3}`); method linear only."""
    weights: list[float] | None = None
    """One weight per model. linear and ties: relative (linear divides by their sum, ties by the
    sum of the agreeing models' weights); task_arithmetic: the factor of each task vector. None:
    1 each (the plain average; task_arithmetic adds every task vector whole)."""
    method: Literal["linear", "task_arithmetic", "ties"] = "linear"
    """linear: every tensor is the weighted average of the models' tensors (a checkpoint average
    when the models are checkpoints of one run). task_arithmetic: base + sum of w_i * (model_i -
    base). ties: TIES-Merging (Yadav et al., 2023): each task vector model_i - base trimmed to its
    `density` largest magnitudes, a sign elected per entry by the summed weighted task vectors,
    the mean of the agreeing entries added to base."""
    base: str = ""
    """task_arithmetic and ties: the model the others were tuned from (a folder, or base, sft or
    dpo as in `models`)."""
    density: float = 0.2
    """ties: the share of each task vector's entries kept (by magnitude, per tensor); the paper's k = 20%."""
    base_dir: str = ""
    """Folder that relative model paths are resolved against (set by the loader)."""

    def __post_init__(self) -> None:
        if (self.models is None) == (self.checkpoints is None):
            raise ValueError("models: give either `models` (folders or stage names) or `checkpoints: {of: STAGE, "
                             "last: N}`, not both and not neither")
        if self.checkpoints is not None and self.method != "linear":
            raise ValueError(f"method: {self.method} needs models tuned from `base`; a checkpoint average is linear")
        count = self.checkpoints.last if self.checkpoints is not None else len(self.models or [])
        minimum = 1 if self.method != "linear" else 2
        if count < minimum:
            raise ValueError(f"models: list at least {minimum} model{'s' if minimum > 1 else ''} to merge "
                             f"with method {self.method}")
        if self.method == "linear" and self.base:
            raise ValueError("base: only task_arithmetic and ties use a base model; remove it or change `method`")
        if self.method != "linear" and not self.base:
            raise ValueError(f"base: method {self.method} needs the model the merged ones were tuned from "
                             "(a folder, or base, sft or dpo)")
        ranges.check(self, {"density": ranges.MERGE_DENSITY})
        if self.weights is not None:
            if not isinstance(self.weights, list):
                raise ValueError(f"weights: expected a list of numbers, one per model, got {self.weights!r}")
            if len(self.weights) != count:
                raise ValueError(f"weights: {len(self.weights)} weights for {count} models; give one "
                                 "per model, or none for the plain average")
            for number, weight in enumerate(self.weights):
                if weight not in ranges.MERGE_WEIGHT:
                    raise ValueError(f"weights[{number}]: {weight!r} is not {ranges.MERGE_WEIGHT.describe()}")
            if not sum(self.weights) > 0:
                raise ValueError("weights: their sum must be above 0")
