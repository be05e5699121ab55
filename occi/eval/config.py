"""Settings of `occi eval`."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalConfig:
    suites: list[str] = field(default_factory=lambda: ["offline"])
    """Suites run by `occi eval` and `occi run`: offline (no internet) and/or eu-leaderboard."""
    batch_size: int = 8
    """lm-eval batch size."""
    device: str = "auto"
    """cpu, cuda, cuda:0, ... (auto: cuda when available)."""
    dtype: str = "auto"
    """Model dtype for evaluation (auto: bfloat16 on GPU, float32 on CPU)."""
    limit: int | None = None
    """At most this many examples per task (quick checks); None evaluates everything."""
    num_fewshot: dict[str, int] = field(default_factory=dict)
    """Few-shot examples per family, overriding the leaderboard's (e.g. {arc: 0})."""
    heldout_max_docs: int = 50
    """Held-out documents per language scored for bits per byte."""

    def __post_init__(self) -> None:
        from occi.eval.suites import SUITES

        for suite in self.suites:
            if suite not in SUITES:
                raise ValueError(f"suites: unknown suite {suite!r}; expected one of {', '.join(SUITES)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: expected at least 1, got {self.batch_size}")
