"""The Goldfish loss (Hans et al., 2024, "Be like a Goldfish, Don't Memorize!"): memorisation control.

The paper's hashed mask drops the token at position i from the loss when a hash of the h tokens
before it, x[i-h:i], falls in one of k equal buckets; the decision depends on nothing but those h
tokens, so a passage seen many times loses the same tokens every time and the model cannot learn
to reproduce it verbatim, while about 1/k of ordinary text is left out. Tokens with fewer than h
tokens before them in the sequence are always kept (there is no full window to hash).

The hash is 64-bit FNV-1a over the window's token ids (each one 64-bit word), finished with
splitmix64's mixer so that the k buckets are even; a token is dropped when the result mod k is 0.
It is computed with numpy's wrapping uint64 arithmetic over all windows at once.
"""
from __future__ import annotations

import numpy as np

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


def _mix(value: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    value = (value ^ (value >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    value = (value ^ (value >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return value ^ (value >> np.uint64(31))


def window_hashes(tokens: np.ndarray, h: int) -> np.ndarray:
    """[..., n - h + 1] hashes of every window of h consecutive tokens of the last axis."""
    ids = np.asarray(tokens).astype(np.int64).view(np.uint64)
    windows = np.lib.stride_tricks.sliding_window_view(ids, h, axis=-1)
    digest = np.full(windows.shape[:-1], FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(h):
            digest = (digest ^ windows[..., j]) * FNV_PRIME
        return _mix(digest)


def keep_mask(sequence: np.ndarray, k: int, h: int) -> np.ndarray:
    """Per position of `sequence` (last axis), True when the token there counts in the loss."""
    sequence = np.asarray(sequence)
    keep = np.ones(sequence.shape, dtype=bool)
    if sequence.shape[-1] > h:
        # the window ending just before position i is sequence[i-h:i], i = h .. n-1
        keep[..., h:] = window_hashes(sequence[..., :-1], h) % np.uint64(k) != 0
    return keep


def apply(batch: dict, k: int, h: int) -> dict:
    """The micro batch with the Goldfish-dropped tokens taken out of its loss_mask.

    Position p of a batch predicts labels[p] (the sequence's token p + 1) from tokens[:p + 1], so
    the sequence is tokens followed by the last label, and loss position p is its position p + 1."""
    import torch  # loads torch: only when used

    tokens, labels = batch["tokens"].cpu().numpy(), batch["labels"].cpu().numpy()
    sequence = np.concatenate([tokens, labels[:, -1:]], axis=1)
    keep = torch.from_numpy(keep_mask(sequence, k, h)[:, 1:].copy())
    mask = batch["loss_mask"]
    return {**batch, "loss_mask": mask * keep.to(device=mask.device, dtype=mask.dtype)}


def logged_totals(records: list[dict]) -> dict | None:
    """The Goldfish counts of train/log.jsonl summed over the steps (a step logged twice, by a resumed
    or rolled-back run, counts once, with its last record): {"dropped": loss tokens left out, "loss_tokens":
    the loss tokens before, "steps": steps counted}; None when the log records no counts."""
    steps = {r["step"]: r for r in records if r.get("kind") == "train" and "goldfish_dropped" in r}
    if not steps:
        return None
    return {"dropped": sum(r["goldfish_dropped"] for r in steps.values()),
            "loss_tokens": sum(r["goldfish_loss_tokens"] for r in steps.values()), "steps": len(steps)}


def describe(k: int, h: int, totals: dict | None) -> str:
    """One sentence for the model card and the summary: the rule and the count the run logged."""
    rule = f"Goldfish loss (Hans et al., 2024): 1 token in k = {k} left out of the loss, by a hash of the h = {h} tokens before it"
    if totals is None:
        return rule + "; the training log records no count"
    share = totals["dropped"] / totals["loss_tokens"] if totals["loss_tokens"] else 0.0
    return (rule + f"; {totals['dropped']:,} of {totals['loss_tokens']:,} loss tokens left out ({100 * share:.2f}%) "
            f"in {totals['steps']:,} steps (train/log.jsonl)")
