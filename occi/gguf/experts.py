"""Mixture-of-experts tensors as llama.cpp holds them: one tensor per layer and role.

A transformers checkpoint stores each expert's projections apart (Mixtral:
`block_sparse_moe.experts.<e>.w1/w2/w3`, Qwen-MoE: `mlp.experts.<e>.gate_proj/up_proj/down_proj`);
llama.cpp reads every expert of a layer from one 3-D tensor per role (`ffn_gate_exps`,
`ffn_up_exps`, `ffn_down_exps`), expert 0 first, each expert's matrix as transformers has it.
gguf-py names the stacked tensor from the name without the expert number
(`...experts.w1.weight`), so the stacking here is the same for every family.
"""
from __future__ import annotations

import re

from occi.errors import OcciError

EXPERT = re.compile(r"^(?P<prefix>.+\.experts)\.(?P<expert>\d+)\.(?P<role>[^.]+)\.weight$")


def stack_experts(names: list[str], where: str) -> list[tuple[str, tuple[str, ...]]]:
    """[(name, sources)]: every other tensor as itself, and the per-expert tensors of one layer
    and role as one stacked name whose sources are the experts' tensors in expert order."""
    out: list[tuple[str, tuple[str, ...]]] = []
    groups: dict[str, dict[int, str]] = {}
    for name in names:
        match = EXPERT.match(name)
        if match is None:
            out.append((name, (name,)))
            continue
        stacked = f"{match['prefix']}.{match['role']}.weight"
        if stacked not in groups:
            groups[stacked] = {}
            out.append((stacked, ()))
        groups[stacked][int(match["expert"])] = name
    for stacked, experts in groups.items():
        if sorted(experts) != list(range(len(experts))):
            missing = sorted(set(range(max(experts) + 1)) - set(experts))
            raise OcciError(f"{where}: the experts of {stacked} are not numbered 0..{max(experts)} "
                            f"(missing {missing}); the checkpoint is incomplete")
    return [(name, sources or tuple(groups[name][e] for e in range(len(groups[name])))) for name, sources in out]
