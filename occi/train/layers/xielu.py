"""xIELU (Huang and Schlag, 2024, arXiv:2411.13010), the activation of Apertus' ungated MLP, one
module per megatron MLP (give_each_mlp_its_xielu).

    xielu(x) = alpha_p * x^2 + beta * x                          for x > 0
               alpha_n * (expm1(min(x, eps)) - x) + beta * x     otherwise
    alpha_p = softplus(a_p),  alpha_n = beta + softplus(a_n)

a_p and a_n are learnable scalars of each layer; beta and eps are fixed, kept as buffers so that
they travel with the weights. Computed with the same operations in the same order as transformers'
Python path (XIELUActivation._xielu_python), so fp32 and bf16 results equal transformers' bit for
bit; the tensors have transformers' names (alpha_p, alpha_n, beta, eps) and meaning.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from megatron.core import parallel_state
from megatron.core.tensor_parallel import copy_to_tensor_model_parallel_region
from megatron.core.transformer.mlp import MLP
from megatron.core.transformer.utils import make_sharded_tensors_for_checkpoint

ALPHA_P_INIT, ALPHA_N_INIT, BETA, EPS = 0.8, 0.8, 0.5, -1e-6
"""transformers' (and the paper's) starting values, used for models trained from scratch."""


class XIELU(torch.nn.Module):
    def __init__(self, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.alpha_p = torch.nn.Parameter(torch.log(torch.expm1(torch.tensor(ALPHA_P_INIT, dtype=dtype))).unsqueeze(0))
        self.alpha_n = torch.nn.Parameter(
            torch.log(torch.expm1(torch.tensor(ALPHA_N_INIT - BETA, dtype=dtype))).unsqueeze(0))
        self.register_buffer("beta", torch.tensor(BETA, dtype=dtype))
        self.register_buffer("eps", torch.tensor(EPS, dtype=dtype))

    def scalar(self, parameter: torch.Tensor) -> torch.Tensor:
        """A learnable scalar as the forward pass uses it (the tensor-parallel MLP sums its gradient)."""
        return parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha_p = F.softplus(self.scalar(self.alpha_p))
        alpha_n = self.beta + F.softplus(self.scalar(self.alpha_n))
        return torch.where(x > 0, alpha_p * x * x + self.beta * x,
                           (torch.expm1(torch.min(x, self.eps)) - x) * alpha_n + self.beta * x)


class TensorParallelXIELU(XIELU):
    """xIELU on a tensor-parallel slice of the MLP's inner width: each rank's gradient of a_p and
    a_n covers its slice only, so the backward pass sums them over the tensor-parallel group
    (megatron's finalize_model_grads sums replicated weights' gradients only under sequence
    parallelism, and then for norms)."""

    def scalar(self, parameter: torch.Tensor) -> torch.Tensor:
        return copy_to_tensor_model_parallel_region(parameter, group=parallel_state.get_tensor_model_parallel_group())

    def sharded_state_dict(self, prefix: str = "", sharded_offsets: tuple = (), metadata: dict | None = None):
        """The four scalars, replicated on every tensor-parallel rank (replica ids from megatron's
        tensor- and data-parallel groups)."""
        return make_sharded_tensors_for_checkpoint(self.state_dict(prefix="", keep_vars=True), prefix, {},
                                                   sharded_offsets)


def give_each_mlp_its_xielu(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Every dense MLP of a built megatron model gets a TensorParallelXIELU of its own in place of
    config.activation_func (one function shared by all layers); megatron's MLP calls it on fc1's
    output when gated_linear_unit is False, and checkpoints it with its other submodules."""
    for module in model.modules():
        if type(module) is MLP:
            module.activation_func = TensorParallelXIELU(dtype=dtype)
