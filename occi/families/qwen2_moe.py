"""Qwen2-MoE (Qwen1.5-MoE): q/k/v biases, a shared expert with its sigmoid gate (megatron's: one
SwiGLU MLP, a gate of one unit), dense layers as mlp_only_layers. GGUF: llama.cpp's `qwen2moe`
graph keeps the top-k weights as softmaxed, makes every layer a mixture and needs an output layer
of its own, so norm_topk_prob true, dense layers and tied embeddings are refused there."""
from __future__ import annotations

from occi.errors import OcciError
from occi.families import Family, GgufSpec, common, experts


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


def _gguf_hparams(writer, config: dict, where: str) -> None:
    experts.gguf_every_layer_a_mixture(config, where)
    experts.gguf_routing(config, where, renormalised=False)
    if config.get("tie_word_embeddings"):
        raise OcciError(f"{where}: tie_word_embeddings true cannot be written as GGUF for Qwen2-MoE: "
                        "llama.cpp's qwen2moe graph needs an output layer of its own")
    experts.gguf_experts(writer, config)
    writer.add_expert_feed_forward_length(int(config["moe_intermediate_size"]))
    writer.add_expert_shared_feed_forward_length(int(config["shared_expert_intermediate_size"]))


FAMILY = Family(
    model_type="qwen2_moe", hf_class="Qwen2MoeForCausalLM", model_fields=_fields,
    layer_mappings=experts.qwen_moe_layer, global_mappings=common.global_mappings, export_values=_values,
    exports_recipe=_exports_recipe, export_zeros=("self_attn.q_proj.bias", "self_attn.k_proj.bias",
                                                  "self_attn.v_proj.bias"),
    experts=True, gguf=GgufSpec(arch="QWEN2MOE", interleave_rope=False, hparams=_gguf_hparams),
)
