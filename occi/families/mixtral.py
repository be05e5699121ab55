"""Mixtral: routed experts in every layer, no shared expert, no q/k norm."""
from __future__ import annotations

from occi.errors import OcciError
from occi.families import Family, common, experts


def _fields(config: dict, where: str) -> dict:
    if config.get("router_jitter_noise"):
        raise OcciError(f"{where}: router_jitter_noise {config['router_jitter_noise']} is not supported")
    return {**common.llama_fields(config, where), **experts.routing_fields(config),
            "moe_ffn_hidden_size": int(config["intermediate_size"])}


def _layer(model, layer: int):
    return common.attention_mappings(model, layer) + experts.mixture_mappings(
        model, layer, "block_sparse_moe.", "gate", ("w1", "w3", "w2"))


def _exports_recipe(model) -> str | None:
    if why := experts.recipe_refusal(model):
        return why
    if model.moe_shared_expert_ffn_hidden_size:
        return "a shared expert"
    if model.qk_norm:
        return "qk_norm"
    if not all(model.moe_layers):
        return "dense layers among the experts"
    if model.qkv_bias or not model.moe_norm_top_k:
        return "qkv_bias or moe_norm_top_k false"
    return None


def _values(model) -> dict:
    return {**experts.routing_values(model), "num_local_experts": model.num_experts,
            "intermediate_size": model.expert_ffn_hidden_size, "router_jitter_noise": 0.0,
            "sliding_window": model.sliding_window}


FAMILY = Family(
    model_type="mixtral", hf_class="MixtralForCausalLM", model_fields=_fields, layer_mappings=_layer,
    global_mappings=common.global_mappings, export_values=_values, exports_recipe=_exports_recipe,
    experts=True, gguf=experts.GGUF_REFUSAL,
)
