"""Mixture-of-experts architectures of transformers <-> occi's megatron-core MoE layers.

Which transformers architecture a recipe exports to (export_kind), chosen from its shape:
- routed experts only, every layer a mixture, no q/k norm: Mixtral (MixtralForCausalLM);
- routed experts only with q/k norm (and any dense layers, as `mlp_only_layers`): Qwen3-MoE;
- a shared expert with its sigmoid gate (and any dense layers): Qwen2-MoE, the transformers
  architecture whose shared expert is megatron's (one SwiGLU MLP, sigmoid gate of one unit).
An imported base keeps its own architecture. DeepSeek-V3's shared experts have no gate and its
router is sigmoid-scored with a bias and grouped top-k: not expressed here.

Weights of one mixture layer (megatron's SequentialMLP, the local and the Transformer Engine
spec alike): mlp.router.weight is the router; expert e's linear_fc1 holds its gate then its up
projection, linear_fc2 its down projection; shared_experts has the same two and gate_weight.
transformers 5 keeps experts fused in memory (experts.gate_up_proj [E, 2I, H], down_proj [E, H, I])
and writes them one per expert on disk (Mixtral: block_sparse_moe.experts.e.w1/w3/w2; Qwen:
mlp.experts.e.gate_proj/up_proj/down_proj): the export fills the model in memory, the import reads
the files. The routing is the same function in both: megatron's top-k of the logits softmaxed
over the k equals the softmax over all experts renormalised over the top k (Mixtral, Qwen
norm_topk_prob), and moe_router_pre_softmax is the softmax kept without renormalising.
"""
from __future__ import annotations

import re

from typing import Callable

import torch

from occi.errors import OcciError
from occi.train.config import ModelConfig

ARCHITECTURES = {"mixtral": "MixtralForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM",
                 "qwen3_moe": "Qwen3MoeForCausalLM"}
"""model_type -> the transformers class, for the mixture-of-experts families."""


def export_kind(model: ModelConfig) -> str:
    """The transformers model_type a recipe with experts exports to, or an OcciError saying why none fits."""
    def refuse(why: str) -> OcciError:
        return OcciError(f"model: {why}; no transformers architecture holds this shape exactly "
                         "(occi exports Mixtral, Qwen2-MoE and Qwen3-MoE; see occi/train/hf_moe.py)")

    if model.moe_balancing == "expert_bias":
        raise refuse("moe_balancing expert_bias routes with sigmoid scores and a bias")
    if model.moe_capacity_factor is not None:
        raise refuse("moe_capacity_factor drops tokens, which transformers models never do")
    if model.moe_shared_expert_ffn_hidden_size:
        if not model.moe_shared_expert_gate:
            raise refuse("a shared expert without moe_shared_expert_gate")
        if model.qk_norm:
            raise refuse("a shared expert together with qk_norm")
        return "qwen2_moe"
    if model.qk_norm:
        if model.qkv_bias:
            raise refuse("qk_norm together with qkv_bias")
        return "qwen3_moe"
    if not all(model.moe_layers):
        raise refuse("dense layers among the experts need qk_norm (Qwen3-MoE) or a gated shared expert (Qwen2-MoE)")
    if model.qkv_bias or not model.moe_norm_top_k:
        raise refuse("qkv_bias or moe_norm_top_k false without qk_norm or a shared expert")
    return "mixtral"


def _layer_pattern(config: dict, layers: int) -> list[int]:
    """Which layers of a Qwen-MoE config.json are mixtures (transformers' rule)."""
    step, dense = int(config.get("decoder_sparse_step", 1) or 1), set(config.get("mlp_only_layers") or [])
    return [int(i not in dense and (i + 1) % step == 0) for i in range(layers)]


def model_fields(config: dict, where: str) -> dict:
    """ModelConfig's mixture-of-experts fields from a base's config.json."""
    kind, layers = config["model_type"], int(config["num_hidden_layers"])
    experts = config.get("num_local_experts") or config.get("num_experts")
    fields = {"num_experts": int(experts), "moe_top_k": int(config["num_experts_per_tok"]),
              "moe_aux_loss_coeff": float(config.get("router_aux_loss_coef", 0.001))}
    if kind == "mixtral":
        if config.get("router_jitter_noise"):
            raise OcciError(f"{where}: router_jitter_noise {config['router_jitter_noise']} is not supported")
        return {**fields, "moe_ffn_hidden_size": int(config["intermediate_size"])}
    fields.update(moe_ffn_hidden_size=int(config["moe_intermediate_size"]),
                  moe_norm_top_k=bool(config.get("norm_topk_prob", False)))
    if kind == "qwen2_moe":
        fields.update(moe_shared_expert_ffn_hidden_size=int(config["shared_expert_intermediate_size"]),
                      moe_shared_expert_gate=True)
    pattern = _layer_pattern(config, layers)
    if 1 not in pattern:
        raise OcciError(f"{where}: no layer is a mixture of experts (decoder_sparse_step, mlp_only_layers)")
    first = pattern.index(1)
    later = [i for i, moe in enumerate(pattern) if moe]
    interval = later[1] - later[0] if len(later) > 1 else layers
    fields.update(moe_first_dense_layers=first, moe_layer_interval=interval)
    expressed = [int(i >= first and (i - first) % interval == 0) for i in range(layers)]
    if expressed != pattern:
        raise OcciError(f"{where}: the mixture layers {later} are not every k-th layer after the first dense "
                        "ones, which occi's recipes express")
    return fields


def hf_values(model: ModelConfig, kind: str) -> dict:
    """config.json values of the mixture part for an export without a base."""
    values = {"num_experts_per_tok": model.moe_top_k, "router_aux_loss_coef": model.moe_aux_loss_coeff,
              "output_router_logits": False}
    if kind == "mixtral":
        return {**values, "num_local_experts": model.num_experts, "intermediate_size": model.expert_ffn_hidden_size,
                "router_jitter_noise": 0.0, "sliding_window": model.sliding_window}
    pattern = model.moe_layers
    values.update(num_experts=model.num_experts, moe_intermediate_size=model.expert_ffn_hidden_size,
                  intermediate_size=model.ffn_hidden_size, norm_topk_prob=model.moe_norm_top_k,
                  decoder_sparse_step=1, mlp_only_layers=[i for i, moe in enumerate(pattern) if not moe],
                  use_sliding_window=False)
    if kind == "qwen2_moe":
        values.update(shared_expert_intermediate_size=model.moe_shared_expert_ffn_hidden_size, qkv_bias=True)
    return values


def disk_names(kind: str, experts: int, shared: bool) -> dict[str, list[str]]:
    """Per mixture layer, the tensors of a transformers checkpoint on disk, by role."""
    if kind == "mixtral":
        prefix = "block_sparse_moe."
        names = {"router": [prefix + "gate.weight"],
                 "gate": [f"{prefix}experts.{e}.w1.weight" for e in range(experts)],
                 "up": [f"{prefix}experts.{e}.w3.weight" for e in range(experts)],
                 "down": [f"{prefix}experts.{e}.w2.weight" for e in range(experts)]}
    else:
        names = {"router": ["mlp.gate.weight"]}
        for role in ("gate", "up", "down"):
            names[role] = [f"mlp.experts.{e}.{role}_proj.weight" for e in range(experts)]
    if shared:
        names["shared"] = ["mlp.shared_expert.gate_proj.weight", "mlp.shared_expert.up_proj.weight",
                           "mlp.shared_expert.down_proj.weight", "mlp.shared_expert_gate.weight"]
    return names


def disk_shapes(model: ModelConfig, kind: str) -> dict[str, tuple[int, ...]]:
    """The shapes of disk_names' tensors (one mixture layer), from the model's widths."""
    h, f, shared = model.hidden_size, model.expert_ffn_hidden_size, model.moe_shared_expert_ffn_hidden_size
    names = disk_names(kind, model.num_experts, bool(shared))
    shapes = {names["router"][0]: (model.num_experts, h)}
    for role, shape in (("gate", (f, h)), ("up", (f, h)), ("down", (h, f))):
        shapes.update({name: shape for name in names[role]})
    if shared:
        gate, up, down, gate_weight = names["shared"]
        shapes.update({gate: (shared, h), up: (shared, h), down: (h, shared), gate_weight: (1, h)})
    return shapes


def megatron_from_hf(model: ModelConfig, kind: str, src: str, name: str,
                     read: Callable[[str], torch.Tensor]) -> torch.Tensor:
    """One megatron tensor of a mixture layer (full, EP=1 and TP=1 layout) from a checkpoint's files,
    reading only the tensors it is made of; `src` is the layer's transformers prefix."""
    names = disk_names(kind, model.num_experts, bool(model.moe_shared_expert_ffn_hidden_size))
    if name == "mlp.router.weight":
        return read(src + names["router"][0])
    expert = re.fullmatch(r"mlp\.experts\.local_experts\.(\d+)\.linear_fc([12])\.weight", name)
    if expert:
        e = int(expert[1])
        if expert[2] == "2":
            return read(src + names["down"][e])
        return torch.cat([read(src + names["gate"][e]), read(src + names["up"][e])])
    if name.startswith("mlp.shared_experts.") and "shared" in names:
        gate, up, down, gate_weight = names["shared"]
        if name.endswith("linear_fc1.weight"):
            return torch.cat([read(src + gate), read(src + up)])
        if name.endswith("linear_fc2.weight"):
            return read(src + down)
        if name.endswith("gate_weight"):
            return read(src + gate_weight)
    raise KeyError(f"no transformers tensor of a {kind} base makes megatron's {name}")


def hf_from_megatron(state: dict[str, torch.Tensor], model: ModelConfig, src: str, dst: str) -> dict[str, torch.Tensor]:
    """One mixture layer's transformers tensors, as a transformers 5 model holds them in memory."""
    fc1 = [state[f"{src}mlp.experts.local_experts.{e}.linear_fc1.weight"] for e in range(model.num_experts)]
    fc2 = [state[f"{src}mlp.experts.local_experts.{e}.linear_fc2.weight"] for e in range(model.num_experts)]
    out = {dst + "mlp.gate.weight": state[src + "mlp.router.weight"],
           dst + "mlp.experts.gate_up_proj": torch.stack(fc1), dst + "mlp.experts.down_proj": torch.stack(fc2)}
    if model.moe_shared_expert_ffn_hidden_size:
        gate, up = torch.chunk(state[src + "mlp.shared_experts.linear_fc1.weight"], 2, dim=0)
        out[dst + "mlp.shared_expert.gate_proj.weight"], out[dst + "mlp.shared_expert.up_proj.weight"] = gate, up
        out[dst + "mlp.shared_expert.down_proj.weight"] = state[src + "mlp.shared_experts.linear_fc2.weight"]
        out[dst + "mlp.shared_expert_gate.weight"] = state[src + "mlp.shared_experts.gate_weight"]
    return out
