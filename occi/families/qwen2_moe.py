"""Qwen2-MoE (Qwen1.5-MoE): q/k/v biases, a shared expert with its sigmoid gate (megatron's: one
SwiGLU MLP, a gate of one unit), dense layers as mlp_only_layers."""
from __future__ import annotations

from occi.families import Family, common, experts


def _fields(config: dict, where: str) -> dict:
    return {**experts.qwen_moe_fields(config, where, qkv_bias=bool(config.get("qkv_bias", True))),
            "moe_shared_expert_ffn_hidden_size": int(config["shared_expert_intermediate_size"]),
            "moe_shared_expert_gate": True}


def _exports_recipe(model) -> str | None:
    if why := experts.recipe_refusal(model):
        return why
    if not model.moe_shared_expert_ffn_hidden_size:
        return "no shared expert"
    if not model.moe_shared_expert_gate:
        return "a shared expert without moe_shared_expert_gate"
    if model.qk_norm:
        return "a shared expert together with qk_norm"
    return None


def _values(model) -> dict:
    return {**experts.qwen_moe_values(model), "qkv_bias": True,
            "shared_expert_intermediate_size": model.moe_shared_expert_ffn_hidden_size}


FAMILY = Family(
    model_type="qwen2_moe", hf_class="Qwen2MoeForCausalLM", model_fields=_fields,
    layer_mappings=experts.qwen_moe_layer, global_mappings=common.global_mappings, export_values=_values,
    exports_recipe=_exports_recipe, export_zeros=("self_attn.q_proj.bias", "self_attn.k_proj.bias",
                                                  "self_attn.v_proj.bias"),
    experts=True, gguf=experts.GGUF_REFUSAL,
)
