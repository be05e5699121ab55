"""The MLP's activation function by ModelConfig.mlp_activation (named functions, not lambdas,
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


ACTIVATIONS = {"swiglu": F.silu, "geglu": gelu_tanh, "quick_geglu": quick_gelu, "xielu": F.silu}
"""xielu's entry is a placeholder: occi/train/layers/xielu.py puts the learnable xIELU in after the build."""
