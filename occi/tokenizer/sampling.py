"""Which text a shared tokenizer learns from: temperature sampling over languages.

p(L) is proportional to chars(L)**alpha. Each language gets p(L) x budget characters of its
training lines (shuffled with the run's seed); a language with less text than its share is
repeated, so small languages are not drowned by large ones.
"""
from __future__ import annotations

import random
from pathlib import Path

from occi.corpora.reader import read_texts
from occi.errors import OcciError


def language_shares(chars: dict[str, int], alpha: float) -> dict[str, float]:
    """p(L) for every language with text."""
    empty = [code for code, n in chars.items() if n == 0]
    if empty:
        raise OcciError(f"no training text for {', '.join(empty)}: the corpora stage kept no documents for it; "
                        "add text for it or remove it from `languages`")
    powered = {code: n ** alpha for code, n in chars.items()}
    total = sum(powered.values())
    return {code: value / total for code, value in powered.items()}


def sample_lines(lines: dict[str, list[str]], alpha: float, budget: int, seed: int) -> tuple[dict[str, list[str]], dict]:
    """Lines per language drawn to the temperature shares, and what was actually drawn."""
    chars = {code: sum(map(len, items)) for code, items in lines.items()}
    shares = language_shares(chars, alpha)
    budget = min(budget, sum(chars.values()) * 4)  # no point repeating every language many times over
    rng = random.Random(seed)
    chosen: dict[str, list[str]] = {}
    for code, items in lines.items():
        target = shares[code] * budget
        order = items[:]
        rng.shuffle(order)
        picked, taken = [], 0
        while taken < target:
            for line in order:
                picked.append(line)
                taken += len(line)
                if taken >= target:
                    break
        chosen[code] = picked
    drawn = {code: sum(map(len, items)) for code, items in chosen.items()}
    total = sum(drawn.values())
    record = {code: {"available_chars": chars[code], "target_share": round(shares[code], 6),
                     "sampled_chars": drawn[code], "actual_share": round(drawn[code] / total, 6),
                     "repeats": round(drawn[code] / chars[code], 3)} for code in lines}
    return chosen, record


def write_training_text(chosen: dict[str, list[str]], path: Path, seed: int) -> int:
    """All sampled lines, interleaved in a seeded order, one per line; returns the line count."""
    everything = [line for items in chosen.values() for line in items]
    random.Random(seed).shuffle(everything)
    with open(path, "w", encoding="utf-8") as handle:
        for line in everything:
            handle.write(line + "\n")
    return len(everything)


def corpus_lines(cfg, run, split: str) -> dict[str, list[str]]:
    """The non-empty lines of each run language's corpus, its training or held-out part (`split`)."""
    lines = {}
    for code in cfg.languages:
        texts = read_texts(run, code, split, cfg.heldout)
        lines[code] = [line.strip() for _, text in texts for line in text.splitlines() if line.strip()]
    return lines
