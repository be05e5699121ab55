"""The model lm-eval evaluates: lm-eval's transformers wrapper, with one change.

Rolling log-likelihoods (bits per byte) are computed without a scored BOS token: lm-eval's
`loglikelihood_rolling` already puts the BOS token in front of the first window as context, so
a tokenizer that also adds BOS itself (Llama, Mistral, EuroLLM) makes the model predict BOS
from BOS and that token's log-likelihood is counted as if it were text. Other request types keep
the tokenizer's own habit, which is how those models were trained and are usually evaluated.
"""
from __future__ import annotations

from lm_eval.models.huggingface import HFLM


class OcciLM(HFLM):
    """HFLM whose rolling log-likelihoods score only the text's own tokens."""

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        saved = self.add_bos_token
        self.add_bos_token = False
        try:
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
        finally:
            self.add_bos_token = saved


def load(model: str, device: str, dtype: str, batch_size: int):
    """A transformers causal LM from a folder or a hub id, or a GGUF file (run by llama.cpp,
    occi/eval/llamacpp.py), ready for lm-eval."""
    if model.endswith(".gguf"):
        from occi.eval.llamacpp import LlamaCppLM  # loads numpy, tqdm: only when used

        return LlamaCppLM(model, gpu_layers=-1 if device.startswith("cuda") else 0)
    return OcciLM(pretrained=model, device=device, dtype=dtype, batch_size=batch_size)
