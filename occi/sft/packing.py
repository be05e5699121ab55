"""From tokenized conversations to training sequences: epochs, packing, masks.

Each conversation of n tokens becomes n-1 training positions (inputs ids[:-1], labels ids[1:]),
trained on where the label is an assistant token. Per epoch the conversations (each as many
times as its source weight says) are shuffled with the run's seed and the epoch number, then
packed first-fit in that order into sequences of `seq_length` positions, or placed one per
sequence when packing is off. Every step takes `global_batch_size` sequences; the last step of
an epoch is filled up with empty sequences (no loss). The whole plan depends only on the data
and the seed, so every rank builds it alone and a resumed run continues it exactly.

Inside a packed sequence the position ids restart at 0 for every conversation and the attention
mask is block-diagonal causal: no token attends to another conversation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class Conversations:
    ids: np.ndarray
    assistant: np.ndarray
    offsets: np.ndarray
    repeats: np.ndarray

    @classmethod
    def load(cls, path: Path) -> "Conversations":
        with np.load(path) as data:
            return cls(data["ids"], data["assistant"], data["offsets"], data["repeats"])

    def __len__(self) -> int:
        return len(self.repeats)

    def positions(self, index: int) -> int:
        """Training positions of a conversation (its tokens minus one)."""
        return int(self.offsets[index + 1] - self.offsets[index] - 1)


def plan(conversations: Conversations, epochs: int, seq_length: int, global_batch_size: int, packing: bool,
         seed: int) -> list[list[list[int]]]:
    """steps -> sequences (global_batch_size each) -> conversation indexes."""
    steps = []
    copies = np.repeat(np.arange(len(conversations)), conversations.repeats)
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(copies)
        sequences: list[list[int]] = []
        if packing:
            room: list[int] = []
            for index in order.tolist():
                need = conversations.positions(index)
                slot = next((s for s, free in enumerate(room) if free >= need), None)
                if slot is None:
                    sequences.append([])
                    room.append(seq_length)
                    slot = len(sequences) - 1
                sequences[slot].append(index)
                room[slot] -= need
        else:
            sequences = [[index] for index in order.tolist()]
        for start in range(0, len(sequences), global_batch_size):
            batch = sequences[start:start + global_batch_size]
            steps.append(batch + [[] for _ in range(global_batch_size - len(batch))])
    return steps


def loss_tokens(conversations: Conversations, sequences: list[list[int]]) -> int:
    """Trained positions of these sequences (labels that are assistant tokens)."""
    total = 0
    for sequence in sequences:
        for index in sequence:
            start, end = conversations.offsets[index], conversations.offsets[index + 1]
            total += int(conversations.assistant[start + 1:end].sum())
    return total


def batch(conversations: Conversations, sequences: list[list[int]], seq_length: int, pad_id: int) -> dict:
    """One micro batch: tokens, labels, loss_mask, position_ids [b, s] and attention_mask [b, 1, s, s]
    (True: masked)."""
    b = len(sequences)
    tokens = torch.full((b, seq_length), pad_id, dtype=torch.long)
    labels = torch.full((b, seq_length), pad_id, dtype=torch.long)
    loss_mask = torch.zeros((b, seq_length), dtype=torch.float32)
    positions = torch.zeros((b, seq_length), dtype=torch.long)
    segment = torch.full((b, seq_length), -1, dtype=torch.long)  # padding: its own segment per position
    for row, sequence in enumerate(sequences):
        cursor = 0
        for number, index in enumerate(sequence):
            start, end = int(conversations.offsets[index]), int(conversations.offsets[index + 1])
            ids = torch.from_numpy(conversations.ids[start:end].astype(np.int64))
            mask = torch.from_numpy(conversations.assistant[start:end].astype(np.float32))
            n = end - start - 1
            tokens[row, cursor:cursor + n] = ids[:-1]
            labels[row, cursor:cursor + n] = ids[1:]
            loss_mask[row, cursor:cursor + n] = mask[1:]
            positions[row, cursor:cursor + n] = torch.arange(n)
            segment[row, cursor:cursor + n] = number
            cursor += n
        positions[row, cursor:] = torch.arange(seq_length - cursor)
    causal = torch.tril(torch.ones(seq_length, seq_length, dtype=torch.bool))
    same = segment[:, :, None] == segment[:, None, :]
    padding = segment < 0
    allowed = causal & (same | (padding[:, :, None] & padding[:, None, :]))
    return {"tokens": tokens, "labels": labels, "loss_mask": loss_mask, "position_ids": positions,
            "attention_mask": (~allowed)[:, None]}
