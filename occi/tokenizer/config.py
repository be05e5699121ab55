"""A tokenizer recipe (tokenizer/<name>.yaml): what SentencePiece trains, and on how much text."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from occi import ranges


@dataclass
class TokenizerConfig:
    description: str = ""
    """One line saying what this recipe is for."""
    source: Literal["train", "base", "extend"] = "train"
    """train: a new tokenizer from this recipe; base (`tokenizer: base`): the imported base model's
    tokenizer as it is; extend (`tokenizer: {extend: RECIPE, add: N}`): the base's, plus pieces
    learned with this recipe on the run's corpora."""
    add: int = 0
    """extend: at most this many new pieces (those the base lacks, most useful first)."""
    vocab_size: int = 32_000
    """Vocabulary size, special tokens included."""
    model_type: Literal["bpe", "unigram"] = "bpe"
    """SentencePiece algorithm."""
    alpha: float = 0.3
    """Language sampling temperature: p(L) proportional to chars(L)**alpha (XLM-R/mT5: 0.3;
    0 = equal shares, 1 = proportional to the data)."""
    char_budget: int = 500_000_000
    """Characters of training text; a language short of its share is repeated to reach it."""
    character_coverage: float = 0.9999
    """Share of characters covered by the vocabulary; the rest falls back to bytes."""
    byte_fallback: bool = True
    """Unknown characters become UTF-8 byte tokens instead of <unk>."""
    split_digits: bool = True
    """Every digit is its own token."""
    special_tokens: list[str] = field(default_factory=list)
    """Extra special tokens kept whole (e.g. chat markers), after <unk> <s> </s> <pad>."""
    reserved_tokens: int = 0
    """Placeholder tokens <reserved_0>, ... kept for later use (fine-tuning formats)."""
    input_sentence_size: int = 10_000_000
    """Lines SentencePiece samples (shuffled) from the training text."""
    max_sentence_length: int = 16_384
    """Longest line (bytes) SentencePiece reads; longer lines are skipped by it."""
    hard_vocab_limit: bool = True
    """Fail when the text cannot fill the vocabulary; off for tiny demo corpora."""
    threads: int = 0
    """Training threads; 0 means one per core."""

    def __post_init__(self) -> None:
        ranges.check(self, {"vocab_size": ranges.at_least(8), "alpha": ranges.SHARE,
                            "character_coverage": ranges.between(0.9, 1.0), "char_budget": ranges.at_least(1000),
                            "reserved_tokens": ranges.at_least(0), "input_sentence_size": ranges.at_least(1),
                            "max_sentence_length": ranges.at_least(1), "threads": ranges.at_least(0),
                            "add": ranges.at_least(0)})
        if self.source == "extend" and self.add < 1:
            raise ValueError(f"add: expected the number of pieces to add (1 or more), got {self.add}")
