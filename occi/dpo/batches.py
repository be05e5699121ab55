"""From tokenized pairs to training steps and micro batches.

Per epoch the pairs (each as many times as its source weight says) are shuffled with the run's
seed and the epoch number; every step takes `global_batch_size` pairs, the last step of an epoch
filled up with empty pairs (-1: no loss). The plan depends only on the data and the seed, so every
rank builds it alone and a resumed run continues it exactly.

A micro batch of m pairs is 2m sequences, the m chosen ones first, then the m rejected ones in
the same order (TRL's layout), each padded on the right to the step's longest sequence (see
`step_length`). Sequence i's
inputs are ids[:-1] and labels ids[1:]; a label counts in the log-probability when it is an
answer token. Right padding needs no mask of its own: causal attention keeps every real token
from seeing the padding after it. So a micro batch carries no attention mask at all: the model's
causal mask type is the whole mask (megatron's local attention builds one [s, s] mask itself,
Transformer Engine's fused attention none), where a [2m, 1, s, s] tensor would be built on the
host and copied to the device for every micro batch (64 MB for 4 sequences of 4,096 positions).
"""
from __future__ import annotations

import numpy as np
import torch

from occi.dpo.data import Pairs

EMPTY = -1
"""A pair slot without a pair (the end of an epoch)."""


def plan(pairs: Pairs, epochs: int, global_batch_size: int, seed: int) -> list[list[int]]:
    """steps -> the pair indexes of each step (global_batch_size each, EMPTY where none)."""
    steps = []
    copies = np.repeat(np.arange(len(pairs)), pairs.repeats)
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(copies).tolist()
        for start in range(0, len(order), global_batch_size):
            chunk = order[start:start + global_batch_size]
            steps.append(chunk + [EMPTY] * (global_batch_size - len(chunk)))
    return steps


def rank_share(step_pairs: list[int], micro_batch_size: int, data_parallel: int, dp_rank: int) -> list[list[int]]:
    """This data-parallel rank's micro batches of a step's pairs (micro batch m of rank r holds
    the slice (m x DP + r) of the step, as pretraining and SFT cut their batches)."""
    count = len(step_pairs) // (micro_batch_size * data_parallel)
    return [step_pairs[(m * data_parallel + dp_rank) * micro_batch_size:][:micro_batch_size] for m in range(count)]


def step_length(pairs: Pairs, step_pairs: list[int], seq_length: int, multiple: int) -> int:
    """Positions per sequence for a step: its longest sequence's, rounded up to `multiple`, at most
    `seq_length`. Every micro batch of the step (on every rank) is padded to it, so the pipeline
    stages agree on the shape; short pairs do not pay for the longest the data could hold."""
    longest = max((len(pairs.sequence(2 * p + side)) - 1 for p in step_pairs if p != EMPTY for side in (0, 1)),
                  default=1)
    return min(seq_length, -(-longest // multiple) * multiple)


def batch(pairs: Pairs, pair_indexes: list[int], seq_length: int, reference: np.ndarray | None,
          pad_id: int = 0) -> dict:
    """One micro batch: tokens, labels, loss_mask, position_ids [2m, s] (no attention mask: causal
    attention is the model's own, see above), pair_mask [m] (0 for EMPTY) and reference [2m] (the
    reference log-probabilities, chosen then rejected; zeros without a reference)."""
    m = len(pair_indexes)
    tokens = torch.full((2 * m, seq_length), pad_id, dtype=torch.long)
    labels = torch.full((2 * m, seq_length), pad_id, dtype=torch.long)
    loss_mask = torch.zeros((2 * m, seq_length), dtype=torch.float32)
    for row, pair in enumerate(pair_indexes):
        if pair == EMPTY:
            continue
        for side in (0, 1):  # chosen rows first, rejected rows after them
            sequence = 2 * pair + side
            ids = torch.from_numpy(pairs.sequence(sequence).astype(np.int64))
            n = len(ids) - 1
            target = side * m + row
            tokens[target, :n] = ids[:-1]
            labels[target, :n] = ids[1:]
            # label t is token t + 1: an answer token from the answer's start on
            first = max(int(pairs.answer_start[sequence]) - 1, 0)
            loss_mask[target, first:n] = 1.0
    positions = torch.arange(seq_length).expand(2 * m, -1).contiguous()
    pair_mask = torch.tensor([0.0 if p == EMPTY else 1.0 for p in pair_indexes], dtype=torch.float32)
    ref = torch.zeros(2 * m, dtype=torch.float64)
    if reference is not None:
        for row, pair in enumerate(pair_indexes):
            if pair != EMPTY:
                ref[row], ref[m + row] = float(reference[pair, 0]), float(reference[pair, 1])
    return {"tokens": tokens, "labels": labels, "loss_mask": loss_mask, "position_ids": positions,
            "pair_mask": pair_mask, "reference": ref}
