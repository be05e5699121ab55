"""Which language each training sample came from, in the order training reads them.

megatron-core's BlendedDataset decides up front, for every sample of the run, which language's
dataset it is drawn from (its dataset_index); a step reads samples [step x global batch, (step + 1)
x global batch). Counting that index up to the steps actually trained gives the tokens trained
per language, which the training log records and the model card and training-content summary read.
"""
from __future__ import annotations

import numpy as np


def trained_languages(cfg, blend: dict) -> list[str]:
    """The run's languages that training draws from (a weight above 0), in the blend's order."""
    return [code for code in cfg.languages if blend["languages"][code]["weight"] > 0]


class LanguageSamples:
    """Samples per language read so far, counted from the blend's real data order."""

    def __init__(self, train_data, languages: list[str]):
        self.data = train_data
        self.languages = languages
        self.counted = 0
        self.counts = np.zeros(len(languages), dtype=np.int64)

    def through(self, samples: int) -> dict[str, int]:
        """{language: samples} among the first `samples` samples of the run."""
        if not hasattr(self.data, "dataset_index"):  # one language: megatron builds a plain GPTDataset
            return {self.languages[0]: samples}
        if samples < self.counted:
            self.counted, self.counts[:] = 0, 0
        # read at each call: with deferred index loading it exists once the first samples were read
        chunk = np.asarray(self.data.dataset_index[self.counted:samples], dtype=np.int64)
        self.counts += np.bincount(chunk, minlength=len(self.languages))
        self.counted = samples
        return {code: int(count) for code, count in zip(self.languages, self.counts)}

    def trained(self, batches: int, per_batch: int, skipped: list[int]) -> dict[str, int]:
        """{language: samples} of the first `batches` batches of the data order, less the `skipped`
        ones among them (batches the stability guard took out of the data order)."""
        counts = self.through(batches * per_batch)
        for batch in skipped:
            first = batch * per_batch
            if not hasattr(self.data, "dataset_index"):
                counts[self.languages[0]] -= per_batch
                continue
            left_out = np.bincount(np.asarray(self.data.dataset_index[first:first + per_batch], dtype=np.int64),
                                   minlength=len(self.languages))
            for code, count in zip(self.languages, left_out):
                counts[code] -= int(count)
        return counts
