"""MXFP4 expert weights as the gpt-oss hub checkpoints store them, dequantized at import.

A tensor `name` of transformers' layout [experts, in, out] is stored as `name_blocks` (uint8
[experts, out, in / 32, 16]: 32 four-bit values per block, the low nibble first) and
`name_scales` (uint8 [experts, out, in / 32]: one power-of-two exponent per block, biased by
127). A four-bit code is an FP4 (E2M1) value: a sign bit, then 0, 0.5, 1, 1.5, 2, 3, 4, 6.
Facts from the OCP Microscaling spec as transformers' integrations/mxfp4.py reads it.
"""
from __future__ import annotations

import torch

FP4 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
"""The value of each four-bit code."""
BLOCK = 32
"""Values sharing one scale."""
SCALE_BIAS = 127


def packed_names(name: str) -> tuple[str, str]:
    return f"{name}_blocks", f"{name}_scales"


def is_packed(name: str, stored: dict) -> bool:
    """Whether `name` is absent from a checkpoint's tensors but stored there as MXFP4."""
    blocks, scales = packed_names(name)
    return name not in stored and blocks in stored and scales in stored


def packed_shapes(name: str, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The blocks and scales shapes of a tensor of transformers' shape [experts, in, out]."""
    experts, inner, outer = shape
    blocks, scales = packed_names(name)
    return {blocks: (experts, outer, inner // BLOCK, BLOCK // 2), scales: (experts, outer, inner // BLOCK)}


def dequantize(blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """blocks [..., out, in / 32, 16] and scales [..., out, in / 32] -> the values [..., in, out]
    (one expert's at a time when given one expert's blocks)."""
    codes = torch.stack([blocks & 0x0F, blocks >> 4], dim=-1).reshape(*blocks.shape[:-1], BLOCK).long()
    values = torch.tensor(FP4, dtype=torch.float32)[codes]
    values = torch.ldexp(values, (scales.to(torch.int32) - SCALE_BIAS).unsqueeze(-1).float())
    return values.reshape(*values.shape[:-2], -1).transpose(-1, -2).to(dtype)


def quantize(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse, to the nearest FP4 code with the scale making each block's largest magnitude at
    most 6 (for writing test checkpoints): values [..., in, out] -> (blocks, scales)."""
    rows = values.float().transpose(-1, -2)
    rows = rows.reshape(*rows.shape[:-1], -1, BLOCK)
    largest = rows.abs().amax(dim=-1).clamp(min=2.0 ** -126)
    exponent = torch.ceil(torch.log2(largest / 6.0)).clamp(-SCALE_BIAS, 127)
    scaled = rows / torch.exp2(exponent).unsqueeze(-1)
    table = torch.tensor(FP4)
    codes = (scaled.unsqueeze(-1) - table).abs().argmin(dim=-1).to(torch.uint8)
    pairs = codes.reshape(*codes.shape[:-1], BLOCK // 2, 2)
    blocks = pairs[..., 0] | (pairs[..., 1] << 4)
    return blocks.to(torch.uint8), (exponent + SCALE_BIAS).to(torch.uint8)
