"""Qwen3-MoE: q/k norm, routed experts only, dense layers as mlp_only_layers. GGUF: llama.cpp's
`qwen3moe` graph renormalises the top-k weights and makes every layer a mixture, so
norm_topk_prob false and dense layers are refused there."""
from __future__ import annotations

from occi.families import Family, GgufSpec, common, experts


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


def _gguf_hparams(writer, config: dict, where: str) -> None:
    experts.gguf_every_layer_a_mixture(config, where)
    experts.gguf_routing(config, where, renormalised=True)
    experts.gguf_experts(writer, config)
    writer.add_expert_feed_forward_length(int(config["moe_intermediate_size"]))


FAMILY = Family(
    model_type="qwen3_moe", hf_class="Qwen3MoeForCausalLM", model_fields=_fields,
    layer_mappings=experts.qwen_moe_layer, global_mappings=common.global_mappings,
    export_values=experts.qwen_moe_values, exports_recipe=_exports_recipe, experts=True,
    gguf=GgufSpec(arch="QWEN3MOE", interleave_rope=False, hparams=_gguf_hparams),
)
