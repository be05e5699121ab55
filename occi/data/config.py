"""Settings of `occi data prepare`: how the corpora become megatron indexed datasets."""
from __future__ import annotations

from dataclasses import dataclass, field

from occi import languages, ranges


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
    """Threads each process's SentencePiece encodes on (the new words that occi/data/bpe.py leaves to it,
    or whole documents for models not encoded word by word); 0 means cores / workers."""

    def __post_init__(self) -> None:
        for code in self.weights:
            languages.get(code)
        ranges.check(self, {"alpha": ranges.SHARE, "weights": ranges.at_least(0), "workers": ranges.at_least(0),
                            "threads": ranges.at_least(0)})
        ranges.check(self, {"replay": ranges.Range(0.0, 1.0, low_open=True, high_open=True)})
        for code in self.replay:
            languages.get(code)
        if sum(self.replay.values()) >= 1.0:
            raise ValueError(f"replay: the shares add up to {sum(self.replay.values())}; leave room for the other languages")
