"""Gate activations of the gated MLP by ModelConfig.activation name (named functions, not lambdas,
so a TransformerConfig holding one can be copied and pickled)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU with the tanh approximation (transformers' gelu_pytorch_tanh)."""
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {"silu": F.silu, "gelu_tanh": gelu_tanh}
