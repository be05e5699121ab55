"""Input embeddings multiplied by sqrt(hidden_size) (Gemma), as transformers does it: the factor
rounded to the embedding's dtype first (in bfloat16 sqrt(2560) becomes 50.5), then multiplied in
that dtype. Only the lookup is scaled: tied output weights are the unscaled table."""
from __future__ import annotations

import math

import torch


def scale_embeddings(gpt_model, hidden_size: int) -> None:
    """Scales the output of the word embedding lookup (a GPTModel of the first pipeline stage)."""
    factor = math.sqrt(hidden_size)

    def scaled(module, _inputs, output):
        return output * torch.tensor(factor, dtype=module.weight.dtype, device=output.device)

    gpt_model.embedding.word_embeddings.register_forward_hook(scaled)
