"""The `merge:` section of a run config: which exported models to average, with which weights."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from occi import ranges


@dataclass
class MergeConfig:
    models: list[str]
    """Exported transformers model folders (`occi export` writes <run>/hf), relative to the config
    file; all of one architecture and shape."""
    weights: list[float] | None = None
    """One weight per model, relative (divided by their sum); None: the plain average."""
    method: Literal["linear"] = "linear"
    """linear: every tensor is the weighted average of the models' tensors (a checkpoint average
    when the models are checkpoints of one run)."""
    base_dir: str = ""
    """Folder that relative model paths are resolved against (set by the loader)."""

    def __post_init__(self) -> None:
        if len(self.models) < 2:
            raise ValueError("models: list at least two exported model folders to merge")
        if self.weights is not None:
            if len(self.weights) != len(self.models):
                raise ValueError(f"weights: {len(self.weights)} weights for {len(self.models)} models; give one "
                                 "per model, or none for the plain average")
            for number, weight in enumerate(self.weights):
                if weight not in ranges.MERGE_WEIGHT:
                    raise ValueError(f"weights[{number}]: {weight!r} is not {ranges.MERGE_WEIGHT.describe()}")
            if not sum(self.weights) > 0:
                raise ValueError("weights: their sum must be above 0")
