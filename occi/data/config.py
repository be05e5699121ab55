"""Settings of `occi data prepare`: how the corpora become megatron indexed datasets."""
from __future__ import annotations

from dataclasses import dataclass, field

from occi import languages


@dataclass
class DataConfig:
    alpha: float = 0.3
    """Temperature of the language blend: weight(L) proportional to tokens(L)**alpha
    (0 = equal shares, 1 = proportional to the data)."""
    weights: dict[str, float] = field(default_factory=dict)
    """Explicit blend weights per language; when given they replace the temperature rule
    (every run language needs one)."""
    replay: dict[str, float] = field(default_factory=dict)
    """Continual pretraining: a fixed share of every batch for the base's main language(s), e.g.
    {en: 0.25}; the other languages share the rest by the rule above. Each is a run language."""
    workers: int = 0
    """Processes that tokenize languages side by side; 0 means one per core (at most one per language)."""
    threads: int = 0
    """Threads each process's SentencePiece encodes new words on; 0 means cores / workers."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha: expected a number between 0 and 1, got {self.alpha}")
        for code, weight in self.weights.items():
            languages.get(code)
            if weight < 0:
                raise ValueError(f"weights.{code}: expected a weight of 0 or more, got {weight}")
        for code, share in self.replay.items():
            languages.get(code)
            if not 0.0 < share < 1.0:
                raise ValueError(f"replay.{code}: expected a share between 0 and 1, got {share}")
        if sum(self.replay.values()) >= 1.0:
            raise ValueError(f"replay: the shares add up to {sum(self.replay.values())}; leave room for the other languages")
        for name in ("workers", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected 0 (the default) or more, got {getattr(self, name)}")
