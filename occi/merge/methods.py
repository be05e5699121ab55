"""How one tensor of the merged model is made from the same tensor of every parent (float64).

TIES-Merging (Yadav et al., 2023, "Resolving Interference When Merging Models", section 3), as
applied here to each tensor, with task vectors t_i = model_i - base and weights w_i:
  1. trim: keep the ceil(density * n) entries of t_i with the largest magnitude, zero the others;
  2. elect: per entry, the sign of sum_i w_i * trimmed t_i (the sign with the larger total mass);
  3. disjoint mean: per entry, over the models whose trimmed entry is non-zero and has the elected
     sign, sum w_i * t_i / sum w_i (with equal weights the paper's plain mean); none: 0;
  base + that.
The paper trims over a whole task vector; per tensor, as common implementations do, needs one
tensor of each model in memory at a time and keeps every tensor's own scale.
"""
from __future__ import annotations

import math

import torch


def linear(tensors: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """sum(w_i * tensor_i) / sum(w_i)."""
    total = sum(weights)
    out = torch.zeros_like(tensors[0], dtype=torch.float64)
    for tensor, weight in zip(tensors, weights):
        out += tensor.double() * (weight / total)
    return out


def task_arithmetic(base: torch.Tensor, tensors: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """base + sum(w_i * (tensor_i - base))."""
    base = base.double()
    out = base.clone()
    for tensor, weight in zip(tensors, weights):
        out += weight * (tensor.double() - base)
    return out


def trim(task: torch.Tensor, density: float) -> torch.Tensor:
    """The task vector with only its ceil(density * n) largest-magnitude entries kept."""
    keep = min(task.numel(), math.ceil(density * task.numel()))
    if keep >= task.numel():
        return task
    flat = task.flatten()
    kept = torch.zeros_like(flat)
    top = flat.abs().topk(keep).indices
    kept[top] = flat[top]
    return kept.view_as(task)


def ties(base: torch.Tensor, tensors: list[torch.Tensor], weights: list[float], density: float) -> torch.Tensor:
    """TIES-Merging of one tensor (the module docstring's three steps)."""
    base = base.double()
    trimmed = torch.stack([trim(tensor.double() - base, density) for tensor in tensors])
    scale = torch.tensor(weights, dtype=torch.float64).view(-1, *([1] * base.dim()))
    elected = (trimmed * scale).sum(0).sign()
    agree = (trimmed != 0) & (trimmed.sign() == elected)
    mass = (scale * agree).sum(0)
    summed = (trimmed * scale * agree).sum(0)
    return base + torch.where(mass > 0, summed / mass.clamp_min(1e-300), torch.zeros_like(base))
