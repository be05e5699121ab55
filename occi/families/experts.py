"""What the mixture-of-experts families share (Mixtral, Qwen2-MoE, Qwen3-MoE).

Weights of one mixture layer (megatron's SequentialMLP, the local and the Transformer Engine spec
alike): mlp.router.weight is the router; expert e's linear_fc1 holds its gate then its up
projection, linear_fc2 its down projection; shared_experts has the same two and gate_weight.
transformers 5 keeps experts fused in memory and writes them one per expert on disk
(mapping.Experts). The routing is the same function in both: megatron's top-k of the logits
softmaxed over the k equals the softmax over all experts renormalised over the top k (Mixtral,
Qwen norm_topk_prob), and moe_router_pre_softmax is the softmax kept without renormalising.
DeepSeek-V3's shared experts have no gate and its router is sigmoid-scored with a bias and grouped
top-k: occi/families/deepseek_v3.py.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from occi.errors import OcciError
from occi.families import common
from occi.families.mapping import Experts, GatedMLP, Mapping, Rename

if TYPE_CHECKING:
    from occi.train.config import ModelConfig


def routing_fields(config: dict) -> dict:
    """Experts, top-k and the auxiliary loss coefficient of a config.json (transformers names the
    experts num_local_experts or num_experts, by family and version)."""
    experts = config.get("num_local_experts") or config.get("num_experts")
    if experts is None:
        raise KeyError("num_experts")
    return {"num_experts": int(experts), "moe_top_k": int(config["num_experts_per_tok"]),
            "moe_aux_loss_coeff": float(config.get("router_aux_loss_coef", 0.001))}


def qwen_moe_fields(config: dict, where: str, **llama) -> dict:
    """ModelConfig fields of a Qwen-MoE config.json: the Llama-like ones, the routing, and which
    layers are mixtures (decoder_sparse_step, mlp_only_layers: transformers' rule)."""
    layers = int(config["num_hidden_layers"])
    fields = {**common.llama_fields(config, where, sliding_window=False, **llama),
              **routing_fields(config),
              "moe_ffn_hidden_size": int(config["moe_intermediate_size"]),
              "moe_norm_top_k": bool(config.get("norm_topk_prob", False))}
    step, dense = int(config.get("decoder_sparse_step", 1) or 1), set(config.get("mlp_only_layers") or [])
    pattern = [int(i not in dense and (i + 1) % step == 0) for i in range(layers)]
    if 1 not in pattern:
        raise OcciError(f"{where}: no layer is a mixture of experts (decoder_sparse_step, mlp_only_layers)")
    first = pattern.index(1)
    later = [i for i, moe in enumerate(pattern) if moe]
    interval = later[1] - later[0] if len(later) > 1 else layers
    expressed = [int(i >= first and (i - first) % interval == 0) for i in range(layers)]
    if expressed != pattern:
        raise OcciError(f"{where}: the mixture layers {later} are not every k-th layer after the first dense "
                        "ones, which occi's recipes express")
    return {**fields, "moe_first_dense_layers": first, "moe_layer_interval": interval}


def recipe_refusal(model: "ModelConfig") -> str | None:
    """Why no transformers mixture-of-experts class holds a recipe, whatever the family."""
    if not model.is_moe:
        return "a dense recipe"
    if model.is_mla:
        return "multi-head latent attention"
    if model.moe_router_groups or model.moe_routed_scaling_factor != 1:
        return "group-limited routing or a routed scaling factor"
    if model.moe_balancing == "expert_bias":
        return "moe_balancing expert_bias routes with sigmoid scores and a bias"
    if model.moe_capacity_factor is not None:
        return "moe_capacity_factor drops tokens, which transformers models never do"
    return None


def routing_values(model: "ModelConfig") -> dict:
    """config.json values every mixture family's export without a base writes."""
    return {**common.dense_export_values(model), "num_experts_per_tok": model.moe_top_k,
            "router_aux_loss_coef": model.moe_aux_loss_coeff, "output_router_logits": False}


def qwen_moe_values(model: "ModelConfig") -> dict:
    """config.json values of a Qwen-MoE export without a base (dense layers as mlp_only_layers)."""
    return {**routing_values(model), "num_experts": model.num_experts,
            "moe_intermediate_size": model.expert_ffn_hidden_size, "intermediate_size": model.ffn_hidden_size,
            "norm_topk_prob": model.moe_norm_top_k, "decoder_sparse_step": 1,
            "mlp_only_layers": [i for i, moe in enumerate(model.moe_layers) if not moe], "use_sliding_window": False}


def mixture_mappings(model: "ModelConfig", layer: int, disk: str, router: str, projections: tuple[str, str, str],
                     shared: bool = False) -> list[Mapping]:
    """One mixture layer: the router, the routed experts and (shared) Qwen2-MoE's gated shared expert.
    disk: the checkpoint's prefix of the mixture (`mlp.` or `block_sparse_moe.`); router: its name
    under it; projections: the per-expert names of gate, up and down."""
    hf, mg = f"model.layers.{layer}.", f"decoder.layers.{layer}.mlp."
    h, f, n = model.hidden_size, model.expert_ffn_hidden_size, model.num_experts
    gate, up, down = ([f"{hf}{disk}experts.{e}.{p}.weight" for e in range(n)] for p in projections)
    out: list[Mapping] = [
        Rename(f"{hf}{disk}{router}.weight", f"{mg}router.weight", (n, h), in_memory=f"{hf}mlp.gate.weight"),
        Experts(tuple(gate), tuple(up), tuple(down), f"{mg}experts", f"{hf}mlp.experts.gate_up_proj",
                f"{hf}mlp.experts.down_proj", f, h)]
    if shared:
        s = model.moe_shared_expert_ffn_hidden_size
        out += [GatedMLP(f"{hf}mlp.shared_expert.gate_proj.weight", f"{hf}mlp.shared_expert.up_proj.weight",
                         f"{mg}shared_experts.linear_fc1.weight", (s, h)),
                Rename(f"{hf}mlp.shared_expert.down_proj.weight", f"{mg}shared_experts.linear_fc2.weight", (h, s)),
                Rename(f"{hf}mlp.shared_expert_gate.weight", f"{mg}shared_experts.gate_weight", (1, h))]
    return out


QWEN_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


def qwen_moe_layer(model: "ModelConfig", layer: int) -> list[Mapping]:
    """A Qwen-MoE layer: attention, then a mixture (with the shared expert if the model has one) or a dense MLP."""
    if not model.moe_layers[layer]:
        return common.llama_layer(model, layer)
    return common.attention_mappings(model, layer) + mixture_mappings(
        model, layer, "mlp.", "gate", QWEN_PROJECTIONS, shared=bool(model.moe_shared_expert_ffn_hidden_size))


# ------------------------------------------------------------------------- GGUF (llama.cpp)
# The experts are stacked per layer by occi/gguf/experts.py for every family; here: the hyper-
# parameters llama.cpp reads, and one-line refusals where its graph would compute something else.

def gguf_experts(writer, config: dict) -> None:
    """expert_count and expert_used_count (llama.cpp's names for the routed experts and top-k)."""
    writer.add_expert_count(int(config.get("num_local_experts") or config["num_experts"]))
    writer.add_expert_used_count(int(config["num_experts_per_tok"]))


def gguf_every_layer_a_mixture(config: dict, where: str) -> None:
    if config.get("mlp_only_layers") or int(config.get("decoder_sparse_step") or 1) != 1:
        raise OcciError(f"{where}: dense layers among the experts (mlp_only_layers {config.get('mlp_only_layers')}, "
                        f"decoder_sparse_step {config.get('decoder_sparse_step')}) cannot be written as GGUF: "
                        "llama.cpp's graph for this architecture makes every layer a mixture of experts")


def gguf_routing(config: dict, where: str, renormalised: bool) -> None:
    """llama.cpp's Qwen-MoE graphs fix whether the top-k routing weights are renormalised."""
    if bool(config.get("norm_topk_prob", False)) != renormalised:
        raise OcciError(f"{where}: norm_topk_prob {config.get('norm_topk_prob')} cannot be written as GGUF: "
                        f"llama.cpp's graph for this architecture {'renormalises' if renormalised else 'keeps'} "
                        f"the top-k routing weights (norm_topk_prob {str(renormalised).lower()})")
