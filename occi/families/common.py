"""What the Llama-like families share: reading config.json into ModelConfig fields, and the tensor
mapping of a Llama decoder (megatron's local layer spec):
- self_attention.linear_qkv holds, per key/value group, its query heads, its key, its value
  (weight, and for Qwen2 the bias);
- mlp.linear_fc1 holds the SwiGLU gate projection, then the up projection;
- the other tensors are renamed one to one.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from occi.errors import OcciError
from occi.families.mapping import FusedQKV, GatedMLP, Mapping, Rename, Tied

if TYPE_CHECKING:
    from occi.train.config import ModelConfig

LLAMA3_SCALING = {"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
"""The Llama 3.1 scaling constants megatron-core 0.16 implements (only the factor is a parameter)."""


def rope(config: dict) -> tuple[float, dict]:
    """(RoPE base, scaling parameters or {}) from transformers 5's rope_parameters or 4's
    top-level rope_theta and rope_scaling."""
    params = dict(config.get("rope_parameters") or {})
    theta = params.pop("rope_theta", config.get("rope_theta", 10_000.0))
    scaling = dict(config.get("rope_scaling") or params)
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    return float(theta), ({} if kind == "default" else {**scaling, "rope_type": kind})


def yarn_attention_factor(scaling: dict) -> float:
    """The factor transformers multiplies YaRN's cos and sin by: attention_factor, else from
    mscale / mscale_all_dim, else 0.1 ln(factor) + 1."""
    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    factor = float(scaling.get("factor") or 1.0)
    if scaling.get("attention_factor") is not None:
        return float(scaling["attention_factor"])
    if scaling.get("mscale") and scaling.get("mscale_all_dim"):
        return mscale(factor, float(scaling["mscale"])) / mscale(factor, float(scaling["mscale_all_dim"]))
    return mscale(factor)


def rope_fields(config: dict, where: str) -> dict:
    """rotary_base, and the RoPE scaling megatron-core expresses exactly: Llama 3.1's
    (rope_scaling_factor) and linear (rope_linear_factor, its seq_len_interpolation_factor)."""
    theta, scaling = rope(config)
    factor, linear = None, None
    if scaling.get("rope_type") == "linear":
        linear = float(scaling["factor"])
    elif scaling.get("rope_type") == "yarn":
        raise OcciError(f"{where}: RoPE scaling 'yarn' is not supported: megatron-core 0.16's GPTModel drops the "
                        f"YaRN attention factor ({yarn_attention_factor(scaling):.4g} here) that transformers applies "
                        "to cos and sin, and occi does not wire its YarnRotaryEmbedding, so this base cannot be "
                        "imported exactly (occi imports 'llama3' and 'linear' scaling)")
    elif scaling:
        if scaling["rope_type"] != "llama3":
            raise OcciError(f"{where}: RoPE scaling {scaling['rope_type']!r} is not supported; megatron-core "
                            "expresses Llama 3.1's ('llama3') and linear scaling only")
        for key, value in LLAMA3_SCALING.items():
            if float(scaling.get(key, value)) != value:
                raise OcciError(f"{where}: RoPE scaling {key} {scaling[key]} differs from the {value} megatron-core "
                                "0.16 hard-codes for Llama 3.1 scaling; this base cannot be expressed exactly")
        factor = float(scaling["factor"])
    if theta != int(theta):
        raise OcciError(f"{where}: rope_theta {theta} is not a whole number, which megatron-core's rotary_base needs")
    return {"rotary_base": int(theta), "rope_scaling_factor": factor, "rope_linear_factor": linear}


def llama_fields(config: dict, where: str, *, qkv_bias: bool = False, qk_norm: bool = False,
                 sliding_window: bool = True) -> dict:
    """ModelConfig fields of a Llama-like config.json (SwiGLU, RMSNorm, RoPE). qkv_bias: the family
    biases q, k and v (Qwen2); qk_norm: RMSNorm on each head's query and key (Qwen3);
    sliding_window False: config.json's sliding_window applies only with use_sliding_window (Qwen)."""
    if config.get("hidden_act", "silu") != "silu":
        raise OcciError(f"{where}: hidden_act {config['hidden_act']!r}; occi's converter supports silu (SwiGLU)")
    if config.get("mlp_bias"):
        raise OcciError(f"{where}: mlp_bias is set; occi's converter supports MLPs without biases")
    if config.get("attention_bias"):  # Qwen2 biases q, k, v always and has no such key
        raise OcciError(f"{where}: attention_bias also biases o_proj, which megatron-core's layer has no place "
                        "for; occi's converter supports it only as Qwen2 has it (q, k and v)")
    window = config.get("sliding_window") if sliding_window or config.get("use_sliding_window") else None
    heads = int(config["num_attention_heads"])
    head_dim = config.get("head_dim") or int(config["hidden_size"]) // heads
    return dict(num_layers=int(config["num_hidden_layers"]), hidden_size=int(config["hidden_size"]),
                ffn_hidden_size=int(config["intermediate_size"]), num_attention_heads=heads,
                num_query_groups=int(config.get("num_key_value_heads") or heads),
                norm_epsilon=float(config.get("rms_norm_eps", 1e-6)), kv_channels=int(head_dim), qkv_bias=qkv_bias,
                qk_norm=qk_norm, tied_embeddings=bool(config.get("tie_word_embeddings", False)),
                sliding_window=int(window) if window else None, vocab_size=int(config["vocab_size"]),
                **rope_fields(config, where))


def global_mappings(model: "ModelConfig") -> list[Mapping]:
    """Embedding, final norm and output layer (the embedding's rows again when tied)."""
    v, h = model.vocab_size, model.hidden_size
    output = (Tied("model.embed_tokens.weight", "output_layer.weight") if model.tied_embeddings
              else Rename("lm_head.weight", "output_layer.weight", (v, h)))
    return [Rename("model.embed_tokens.weight", "embedding.word_embeddings.weight", (v, h)),
            Rename("model.norm.weight", "decoder.final_layernorm.weight", (h,)), output]


def attention_mappings(model: "ModelConfig", layer: int) -> list[Mapping]:
    """The attention block of a Llama-like layer and the two pre-norms (q/k norm and qkv biases as the model says)."""
    hf, mg = f"model.layers.{layer}.", f"decoder.layers.{layer}."
    h, d = model.hidden_size, model.head_dim
    heads, groups = model.num_attention_heads, model.num_query_groups
    out: list[Mapping] = []
    for suffix, columns in (("weight", (h,)), ("bias", ())) if model.qkv_bias else (("weight", (h,)),):
        out.append(FusedQKV(*(f"{hf}self_attn.{p}_proj.{suffix}" for p in "qkv"),
                            megatron=f"{mg}self_attention.linear_qkv.{suffix}", heads=heads, groups=groups,
                            head_dim=d, columns=columns))
    out += [Rename(f"{hf}self_attn.o_proj.weight", f"{mg}self_attention.linear_proj.weight", (h, heads * d)),
            Rename(f"{hf}input_layernorm.weight", f"{mg}input_layernorm.weight", (h,)),
            Rename(f"{hf}post_attention_layernorm.weight", f"{mg}pre_mlp_layernorm.weight", (h,))]
    if model.qk_norm:
        out += [Rename(f"{hf}self_attn.q_norm.weight", f"{mg}self_attention.q_layernorm.weight", (d,)),
                Rename(f"{hf}self_attn.k_norm.weight", f"{mg}self_attention.k_layernorm.weight", (d,))]
    return out


def dense_mlp_mappings(model: "ModelConfig", layer: int) -> list[Mapping]:
    """A SwiGLU MLP: gate and up fused into linear_fc1, down as linear_fc2."""
    hf, mg = f"model.layers.{layer}.mlp.", f"decoder.layers.{layer}.mlp."
    h, f = model.hidden_size, model.ffn_hidden_size
    return [GatedMLP(f"{hf}gate_proj.weight", f"{hf}up_proj.weight", f"{mg}linear_fc1.weight", (f, h)),
            Rename(f"{hf}down_proj.weight", f"{mg}linear_fc2.weight", (h, f))]


def llama_layer(model: "ModelConfig", layer: int) -> list[Mapping]:
    """One dense Llama-like decoder layer."""
    return attention_mappings(model, layer) + dense_mlp_mappings(model, layer)


def dense_export_values(model: "ModelConfig") -> dict:
    """config.json values of a Llama-like export without a base (the special token ids are the exporter's)."""
    return {"hidden_size": model.hidden_size, "intermediate_size": model.ffn_hidden_size,
            "num_hidden_layers": model.num_layers, "num_attention_heads": model.num_attention_heads,
            "num_key_value_heads": model.num_query_groups, "head_dim": model.head_dim, "hidden_act": "silu",
            "max_position_embeddings": model.seq_length, "rms_norm_eps": model.norm_epsilon,
            "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": model.tied_embeddings,
            **rope_export_values(model)}


def rope_export_values(model: "ModelConfig") -> dict:
    """rope_theta, or with a RoPE scaling transformers 5's rope_parameters holding it (the scaling
    megatron-core applies: Llama 3.1's with its hard-coded constants, or linear)."""
    if model.rope_scaling_factor is None and model.rope_linear_factor is None:
        return {"rope_theta": float(model.rotary_base)}
    if model.rope_linear_factor is not None:
        scaling = {"rope_type": "linear", "factor": model.rope_linear_factor}
    else:
        scaling = {"rope_type": "llama3", "factor": model.rope_scaling_factor, **LLAMA3_SCALING}
    return {"rope_parameters": {"rope_theta": float(model.rotary_base), **scaling}}

