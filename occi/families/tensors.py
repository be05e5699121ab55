"""The tensor arithmetic of the mapping kinds (occi/families/mapping.py): the only module of
occi.families that imports torch, and only the mapping kinds' conversion methods import it, so
that reading a family's shape never loads torch."""
from __future__ import annotations

import torch


def fuse_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, groups: int, head_dim: int) -> torch.Tensor:
    """q [heads*d, ...], k and v [groups*d, ...] -> per group: its query heads, its key, its value."""
    rest = q.shape[1:]
    q = q.reshape(groups, -1, *rest)
    return torch.cat([q, k.reshape(groups, head_dim, *rest), v.reshape(groups, head_dim, *rest)],
                     dim=1).reshape(-1, *rest)


def split_qkv(qkv: torch.Tensor, heads: int, groups: int, head_dim: int) -> tuple[torch.Tensor, ...]:
    """The inverse of fuse_qkv."""
    rest = qkv.shape[1:]
    q, k, v = torch.split(qkv.reshape(groups, -1, *rest), [heads // groups * head_dim, head_dim, head_dim], dim=1)
    return q.reshape(heads * head_dim, *rest), k.reshape(groups * head_dim, *rest), v.reshape(groups * head_dim, *rest)


def cat_rows(*parts: torch.Tensor) -> torch.Tensor:
    return torch.cat(parts)


def halves(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gate, up = torch.chunk(tensor, 2, dim=0)
    return gate, up


def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(tensors)
