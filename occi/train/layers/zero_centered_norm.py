"""RMSNorm scaling by (1 + weight), in float32 whatever the input dtype (Gemma's RMSNorm).

megatron-core's layernorm_zero_centered_gamma is honoured only by Transformer Engine's norms; its
local WrappedTorchNorm refuses it. The weight is stored as transformers stores it (no +1 folded
in), so import and export copy it unchanged."""
from __future__ import annotations

import torch


class ZeroCenteredRMSNorm(torch.nn.Module):
    def __init__(self, config, hidden_size: int, eps: float = 1e-6, **_unused):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.zeros(hidden_size, dtype=config.params_dtype))
        # with sequence parallelism each tensor-parallel rank normalises its own slice of the sequence;
        # megatron's finalize_model_grads sums such weights' gradients over the tensor-parallel group
        self.weight.sequence_parallel = config.sequence_parallel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = x.float()
        normed = full * torch.rsqrt(full.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * (1.0 + self.weight.float())).type_as(x)
