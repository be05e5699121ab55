"""A process's share of a stage's work: the one rule every sharded stage and SLURM array uses."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, TypeVar

from occi.errors import OcciError

T = TypeVar("T")


@dataclass(frozen=True)
class Share:
    rank: int = 0
    """This process's index among the processes sharing the work (SLURM_ARRAY_TASK_ID)."""
    world_size: int = 1
    """How many processes share the work."""

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise OcciError(f"--world-size must be at least 1, got {self.world_size}")
        if not 0 <= self.rank < self.world_size:
            raise OcciError(f"--rank must be between 0 and --world-size - 1 ({self.world_size - 1}), got {self.rank}")

    @property
    def whole(self) -> bool:
        """True when this process does all of the work (and so also the step that joins the shares)."""
        return self.world_size == 1

    def mine(self, items: Sequence[T]) -> list[T]:
        """The items of this share: every world_size-th, starting at rank (stable across re-runs)."""
        return [item for index, item in enumerate(items) if index % self.world_size == self.rank]
