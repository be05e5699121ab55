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
