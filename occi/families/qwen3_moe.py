"""Qwen3-MoE: q/k norm, routed experts only, dense layers as mlp_only_layers."""
from __future__ import annotations

from occi.families import Family, common, experts


def _fields(config: dict, where: str) -> dict:
    return experts.qwen_moe_fields(config, where, qk_norm=True)


def _exports_recipe(model) -> str | None:
    if why := experts.recipe_refusal(model):
        return why
    if model.moe_shared_expert_ffn_hidden_size:
        return "a shared expert"
    if not model.qk_norm:
        return "no qk_norm"
    if model.qkv_bias:
        return "qk_norm together with qkv_bias"
    return None


FAMILY = Family(
    model_type="qwen3_moe", hf_class="Qwen3MoeForCausalLM", model_fields=_fields,
    layer_mappings=experts.qwen_moe_layer, global_mappings=common.global_mappings,
    export_values=experts.qwen_moe_values, exports_recipe=_exports_recipe, experts=True, gguf=experts.GGUF_REFUSAL,
)
