"""Gate activations of the gated MLP by ModelConfig.activation name (named functions, not lambdas,
so a TransformerConfig holding one can be copied and pickled)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU with the tanh approximation (transformers' gelu_pytorch_tanh)."""
    return F.gelu(x, approximate="tanh")


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(1.702 x): gpt-oss' gate (swiglu_alpha 1.702), as transformers computes it."""
    return x * torch.sigmoid(x * 1.702)


ACTIVATIONS = {"silu": F.silu, "gelu_tanh": gelu_tanh, "quick_gelu": quick_gelu}
