"""DeepSeek-V3 (and the V3-shaped Kimi/Moonlight-style bases): multi-head latent attention, the
first layers dense, then mixtures with sigmoid-scored, bias-corrected, group-limited routing
(megatron's expert_bias balancing and router groups) plus ungated shared experts.

megatron-core's MLASelfAttention (local spec) holds transformers' q_a_proj / q_a_layernorm /
q_b_proj as linear_q_down_proj / q_layernorm / linear_q_up_proj, kv_a_proj_with_mqa /
kv_a_layernorm / kv_b_proj as linear_kv_down_proj / kv_layernorm / linear_kv_up_proj, in the same
row order. Both rotate adjacent pairs of each head's rotary rows (transformers' rope_interleave,
megatron's MLA rotary path), so every tensor is renamed as it is.
"""
from __future__ import annotations

import re

from occi.errors import OcciError
from occi.families import Family, GgufSpec, common, experts
from occi.families.mapping import GatedMLP, Mapping, Rename

LATENT_NORM_EPSILON = 1e-6
"""transformers' q_a_layernorm and kv_a_layernorm always use this; megatron one epsilon for every norm."""


def _yarn_fields(config: dict, where: str) -> dict:
    """megatron-core's YaRN of latent attention from DeepSeek-V3's rope_scaling (none: {}). Both
    blend the rotary frequencies between whole correction dimensions, multiply the rotary part's
    cos and sin by mscale(factor, mscale) / mscale(factor, mscale_all_dim) and the softmax scale by
    mscale(factor, mscale_all_dim) squared, mscale(s, m) being 0.1 m ln(s) + 1."""
    _, scaling = common.rope(config)
    if not scaling:
        return {}
    if scaling["rope_type"] != "yarn":
        raise OcciError(f"{where}: RoPE scaling {scaling['rope_type']!r} is not supported for DeepSeek-V3; occi "
                        "expresses YaRN ('yarn') and none")
    for key, reason in (("factor", "the factor megatron-core scales by"),
                        ("original_max_position_embeddings", "the context the frequencies were trained for")):
        if not scaling.get(key):
            raise OcciError(f"{where}: RoPE scaling 'yarn' without {key}; set it ({reason})")
    if scaling.get("attention_factor") is not None:
        raise OcciError(f"{where}: RoPE scaling 'yarn' with attention_factor {scaling['attention_factor']} is not "
                        "supported: megatron-core's latent attention derives it from mscale and mscale_all_dim")
    if scaling.get("truncate", True) is False:
        raise OcciError(f"{where}: RoPE scaling 'yarn' with truncate false is not supported: megatron-core's latent "
                        "attention rounds the YaRN correction range to whole dimensions")
    mscale, all_dim = scaling.get("mscale"), scaling.get("mscale_all_dim")
    if bool(mscale) != bool(all_dim) and float(mscale or all_dim) != 1.0 or all_dim and not mscale:
        raise OcciError(f"{where}: RoPE scaling 'yarn' with mscale {mscale} and mscale_all_dim {all_dim} is not "
                        "supported: transformers uses them only together, megatron-core each alone; set both or "
                        "neither")
    return {"yarn_factor": float(scaling["factor"]),
            "yarn_original_context": int(scaling["original_max_position_embeddings"]),
            "yarn_beta_fast": float(scaling.get("beta_fast") or 32.0),
            "yarn_beta_slow": float(scaling.get("beta_slow") or 1.0),
            "yarn_mscale": float(mscale) if mscale and all_dim else None,
            "yarn_mscale_all_dim": float(all_dim) if all_dim else None}


def _fields(config: dict, where: str) -> dict:
    yarn = _yarn_fields(config, where)
    fields = common.llama_fields({**config, "rope_parameters": {"rope_theta": common.rope(config)[0]}}, where)
    if fields["norm_epsilon"] != LATENT_NORM_EPSILON:
        raise OcciError(f"{where}: rms_norm_eps {fields['norm_epsilon']} differs from the {LATENT_NORM_EPSILON} "
                        "of transformers' latent norms; megatron-core has one epsilon for every norm")
    if not config.get("rope_interleave", True):
        raise OcciError(f"{where}: rope_interleave false; megatron-core's latent attention rotates DeepSeek's "
                        "interleaved pairs only")
    heads = int(config["num_attention_heads"])
    if int(config.get("num_key_value_heads") or heads) != heads:
        raise OcciError(f"{where}: num_key_value_heads {config['num_key_value_heads']} differs from "
                        f"num_attention_heads {heads}; latent attention expands every head")
    if not config.get("norm_topk_prob", True):
        raise OcciError(f"{where}: norm_topk_prob false; megatron-core always renormalises sigmoid-scored top-k weights")
    top_k, groups, group_top_k = (int(config[k]) for k in ("num_experts_per_tok", "n_group", "topk_group"))
    if groups > 1 and top_k // group_top_k != 2:
        raise OcciError(f"{where}: num_experts_per_tok {top_k} / topk_group {group_top_k} is not 2: transformers "
                        "scores a group by its best 2 experts, megatron-core by its best top-k / topk_group")
    layers, dense = int(config["num_hidden_layers"]), int(config.get("first_k_dense_replace", 0))
    if dense >= layers:
        raise OcciError(f"{where}: first_k_dense_replace {dense} leaves no mixture-of-experts layer")
    shared = int(config.get("n_shared_experts") or 0)
    expert_width = int(config["moe_intermediate_size"])
    return {**fields, **yarn, "num_query_groups": heads, "kv_channels": None,
            "num_experts": int(config["n_routed_experts"]), "moe_top_k": top_k, "moe_ffn_hidden_size": expert_width,
            "moe_shared_expert_ffn_hidden_size": shared * expert_width or None, "moe_first_dense_layers": dense,
            "moe_balancing": "expert_bias", "moe_router_groups": groups if groups > 1 else None,
            "moe_router_group_top_k": group_top_k if groups > 1 else None,
            "moe_routed_scaling_factor": float(config.get("routed_scaling_factor", 1.0)),
            "mla_q_lora_rank": int(config["q_lora_rank"]) if config.get("q_lora_rank") else None,
            "mla_kv_lora_rank": int(config["kv_lora_rank"]), "mla_qk_nope_head_dim": int(config["qk_nope_head_dim"]),
            "mla_qk_rope_head_dim": int(config["qk_rope_head_dim"]), "mla_v_head_dim": int(config["v_head_dim"])}


def attention(model, layer: int) -> list[Mapping]:
    """Multi-head latent attention and the two pre-norms."""
    hf, mg = f"model.layers.{layer}.", f"decoder.layers.{layer}."
    a, m = f"{hf}self_attn.", f"{mg}self_attention."
    h, heads, rope, kv = model.hidden_size, model.num_attention_heads, model.mla_qk_rope_head_dim, model.mla_kv_lora_rank
    qk = model.mla_qk_nope_head_dim + rope
    out: list[Mapping] = [Rename(f"{hf}input_layernorm.weight", f"{mg}input_layernorm.weight", (h,)),
                          Rename(f"{hf}post_attention_layernorm.weight", f"{mg}pre_mlp_layernorm.weight", (h,))]
    if model.mla_q_lora_rank:
        q = model.mla_q_lora_rank
        out += [Rename(f"{a}q_a_proj.weight", f"{m}linear_q_down_proj.weight", (q, h)),
                Rename(f"{a}q_a_layernorm.weight", f"{m}q_layernorm.weight", (q,)),
                Rename(f"{a}q_b_proj.weight", f"{m}linear_q_up_proj.weight", (heads * qk, q))]
    else:
        out.append(Rename(f"{a}q_proj.weight", f"{m}linear_q_proj.weight", (heads * qk, h)))
    out += [Rename(f"{a}kv_a_proj_with_mqa.weight", f"{m}linear_kv_down_proj.weight", (kv + rope, h)),
            Rename(f"{a}kv_a_layernorm.weight", f"{m}kv_layernorm.weight", (kv,)),
            Rename(f"{a}kv_b_proj.weight", f"{m}linear_kv_up_proj.weight",
                   (heads * (model.mla_qk_nope_head_dim + model.mla_v_head_dim), kv)),
            Rename(f"{a}o_proj.weight", f"{m}linear_proj.weight", (h, heads * model.mla_v_head_dim))]
    return out


def _layer(model, layer: int) -> list[Mapping]:
    if not model.moe_layers[layer]:
        return attention(model, layer) + common.dense_mlp_mappings(model, layer)
    hf, mg = f"model.layers.{layer}.mlp.", f"decoder.layers.{layer}.mlp."
    out = attention(model, layer) + experts.mixture_mappings(model, layer, "mlp.", "gate", experts.QWEN_PROJECTIONS)
    out.append(Rename(f"{hf}gate.e_score_correction_bias", f"{mg}router.expert_bias", (model.num_experts,)))
    if s := model.moe_shared_expert_ffn_hidden_size:
        h = model.hidden_size
        out += [GatedMLP(f"{hf}shared_experts.gate_proj.weight", f"{hf}shared_experts.up_proj.weight",
                         f"{mg}shared_experts.linear_fc1.weight", (s, h)),
                Rename(f"{hf}shared_experts.down_proj.weight", f"{mg}shared_experts.linear_fc2.weight", (h, s))]
    return out


def _exports_recipe(model) -> str | None:
    if not model.is_moe or not model.is_mla:
        return "no multi-head latent attention with experts"
    if model.moe_balancing != "expert_bias" or model.moe_capacity_factor is not None:
        return "routing other than sigmoid scores with the expert bias, without token dropping"
    if model.moe_layer_interval != 1:
        return "dense layers after the first mixture"
    shared, width = model.moe_shared_expert_ffn_hidden_size, model.expert_ffn_hidden_size
    if not shared or shared % width or model.moe_shared_expert_gate:
        return "no ungated shared expert of a whole number of expert widths"
    if model.moe_router_groups and model.moe_top_k // model.moe_router_group_top_k != 2:
        return "router groups scored by other than their best 2 experts"
    if model.norm_epsilon != LATENT_NORM_EPSILON or model.tied_embeddings:
        return f"norm_epsilon other than {LATENT_NORM_EPSILON} or tied embeddings"
    return None


def _rope_values(model) -> dict:
    """config.json's rope_parameters of a recipe: plain, or its latent attention's YaRN."""
    theta = float(model.rotary_base)
    if not model.yarn_factor:
        return {"rope_type": "default", "rope_theta": theta}
    values = {"rope_type": "yarn", "rope_theta": theta, "factor": model.yarn_factor,
              "original_max_position_embeddings": model.yarn_original_context,
              "beta_fast": model.yarn_beta_fast, "beta_slow": model.yarn_beta_slow}
    if model.yarn_mscale_all_dim:
        values |= {"mscale": 1.0 if model.yarn_mscale is None else model.yarn_mscale,
                   "mscale_all_dim": model.yarn_mscale_all_dim}
    return values


def _values(model) -> dict:
    groups = model.moe_router_groups or 1
    values = {**experts.routing_values(model), "n_routed_experts": model.num_experts,
              "moe_intermediate_size": model.expert_ffn_hidden_size,
              "n_shared_experts": model.moe_shared_expert_ffn_hidden_size // model.expert_ffn_hidden_size,
              "first_k_dense_replace": model.moe_first_dense_layers, "n_group": groups,
              "topk_group": model.moe_router_group_top_k or 1, "norm_topk_prob": True,
              "routed_scaling_factor": model.moe_routed_scaling_factor, "q_lora_rank": model.mla_q_lora_rank,
              "kv_lora_rank": model.mla_kv_lora_rank, "qk_nope_head_dim": model.mla_qk_nope_head_dim,
              "qk_rope_head_dim": model.mla_qk_rope_head_dim, "v_head_dim": model.mla_v_head_dim,
              "rope_interleave": True, "rope_parameters": _rope_values(model)}
    values.pop("head_dim", None)
    values.pop("rope_theta", None)
    return values


# ------------------------------------------------------------------------------------------- GGUF

def _gguf_shape(config: dict) -> dict:
    """llama.cpp's DEEPSEEK2 runs latent attention as one key/value head of the latent and rotary
    widths (key) and the latent width (value); its heads' own widths are the *_mla keys."""
    kv, rope = int(config["kv_lora_rank"]), int(config["qk_rope_head_dim"])
    return {"kv_heads": 1, "key_length": kv + rope, "value_length": kv, "rope_dims": rope}


def _gguf_hparams(writer, config: dict, where: str) -> None:
    """llama.cpp's DEEPSEEK2 keys: latent ranks, the heads' widths, the leading dense layers and the
    routing (sigmoid scores, the bias-corrected group-limited top-k, renormalised, scaled). YaRN's
    keys are occi/gguf/rope.py's, mscale_all_dim as rope.scaling.yarn_log_multiplier."""
    import gguf  # loads gguf: only when used

    if not config.get("rope_interleave", True):
        raise OcciError(f"{where}: rope_interleave false cannot be written as GGUF: llama.cpp's DEEPSEEK2 graph "
                        "rotates DeepSeek's interleaved pairs")
    if not config.get("n_shared_experts"):
        raise OcciError(f"{where}: n_shared_experts {config.get('n_shared_experts')} cannot be written as GGUF: "
                        "llama.cpp's DEEPSEEK2 graph adds a shared expert to every mixture")
    _, scaling = common.rope(config)
    if scaling and (not scaling.get("mscale") or scaling.get("mscale") != scaling.get("mscale_all_dim")):
        raise OcciError(f"{where}: YaRN with mscale {scaling.get('mscale')} and mscale_all_dim "
                        f"{scaling.get('mscale_all_dim')} cannot be written as GGUF: llama.cpp's DEEPSEEK2 graph "
                        "takes mscale equal to mscale_all_dim (as DeepSeek-V3's own configs have them)")
    writer.add_leading_dense_block_count(int(config.get("first_k_dense_replace", 0)))
    if config.get("q_lora_rank"):
        writer.add_q_lora_rank(int(config["q_lora_rank"]))
    writer.add_kv_lora_rank(int(config["kv_lora_rank"]))
    writer.add_key_length_mla(int(config["qk_nope_head_dim"]) + int(config["qk_rope_head_dim"]))
    writer.add_value_length_mla(int(config["v_head_dim"]))
    writer.add_expert_feed_forward_length(int(config["moe_intermediate_size"]))
    writer.add_expert_count(int(config["n_routed_experts"]))
    writer.add_expert_used_count(int(config["num_experts_per_tok"]))
    writer.add_expert_shared_count(int(config["n_shared_experts"]))
    writer.add_expert_weights_scale(float(config.get("routed_scaling_factor", 1.0)))
    writer.add_expert_weights_norm(bool(config.get("norm_topk_prob", True)))
    writer.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    if int(config.get("n_group") or 1) > 1:
        writer.add_expert_group_count(int(config["n_group"]))
        writer.add_expert_group_used_count(int(config["topk_group"]))


def _gguf_split(hf_name: str, shape: tuple[int, ...], config: dict):
    """kv_b_proj -> llama.cpp's per-head k_b [heads, latent, nope] and v_b [heads, value, latent]:
    its graph multiplies the queries into the latent space instead of expanding the keys."""
    if not hf_name.endswith("self_attn.kv_b_proj.weight"):
        return None
    import numpy as np  # loads numpy: only when used

    heads, nope, value = (int(config[k]) for k in ("num_attention_heads", "qk_nope_head_dim", "v_head_dim"))
    latent = shape[1]
    prefix = hf_name[: -len("kv_b_proj.weight")]
    per_head = lambda a: a.reshape(heads, nope + value, latent)  # noqa: E731
    return [(f"{prefix}k_b_proj.weight", (heads, latent, nope),
             lambda a: np.ascontiguousarray(per_head(a)[:, :nope].transpose(0, 2, 1))),
            (f"{prefix}v_b_proj.weight", (heads, value, latent), lambda a: np.ascontiguousarray(per_head(a)[:, nope:]))]


def _gguf_tensor_name(hf_name: str) -> str | None:
    """The routing bias (gguf-py maps `e_score_correction` with a `.bias` suffix, not `_bias`)."""
    match = re.fullmatch(r"model\.layers\.(\d+)\.mlp\.gate\.e_score_correction_bias", hf_name)
    return f"blk.{match.group(1)}.exp_probs_b.bias" if match else None


FAMILY = Family(
    model_type="deepseek_v3", hf_class="DeepseekV3ForCausalLM", model_fields=_fields, layer_mappings=_layer,
    global_mappings=common.global_mappings, export_values=_values, exports_recipe=_exports_recipe,
    experts=True,
    gguf=GgufSpec(arch="DEEPSEEK2", interleave_rope=False, hparams=_gguf_hparams, split=_gguf_split,
                  tensor_name=_gguf_tensor_name, shape=_gguf_shape),
)
