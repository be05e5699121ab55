"""Gemma 3, the text model (Gemma3ForCausalLM; config.json's model_type gemma3_text).

Unlike Llama: a GeGLU MLP (gelu_pytorch_tanh), RMSNorms scaling by (1 + w) in float32, norms also
after attention and after the MLP (sandwich norms), q/k norm, input embeddings scaled by
sqrt(hidden), attention scores scaled by query_pre_attn_scalar ** -0.5, and sliding-window
(local) layers with a RoPE base of their own between full-attention (global) layers, whose RoPE
may be linearly scaled (the 4B, 12B and 27B bases: factor 8). The model features are
occi/train/layers/; the norm weights are stored as transformers stores them (the +1 is in the
forward), so every tensor maps unchanged.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from occi.errors import OcciError
from occi.families import Family, GgufSpec, common
from occi.families.mapping import FusedQKV, GatedMLP, Mapping, Rename

if TYPE_CHECKING:
    from occi.train.config import ModelConfig

DEFAULTS = {"vocab_size": 262_208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
            "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
            "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 131_072, "rms_norm_eps": 1e-6,
            "tie_word_embeddings": True, "query_pre_attn_scalar": 256, "sliding_window": 4096,
            "sliding_window_pattern": 6, "rope_theta": 1_000_000.0, "rope_local_base_freq": 10_000.0}
"""transformers' Gemma3TextConfig defaults (4.50 to 5.x) for the keys a published config.json may
leave out (google/gemma-3-4b-pt's text_config names only a few)."""

LLAMA_CPP_LOCAL_BASE = 10_000
LLAMA_CPP_PATTERN = 6
"""llama.cpp's GEMMA3 graph fixes these (src/llama-model.cpp: set_swa_pattern(6),
rope_freq_base_train_swa 10000) rather than reading them from the file."""


def layer_kinds(config: dict, where: str) -> list[bool]:
    """Per layer True for sliding-window attention, from layer_types or sliding_window_pattern."""
    layers = int(config["num_hidden_layers"])
    types = config.get("layer_types")
    if types is None:
        pattern = int(config.get("sliding_window_pattern", config.get("_sliding_window_pattern", 6)))
        return [bool((i + 1) % pattern) for i in range(layers)]
    unknown = set(types) - {"sliding_attention", "full_attention"}
    if unknown or len(types) != layers:
        raise OcciError(f"{where}: layer_types {types} must name sliding_attention or full_attention for each of "
                        f"the {layers} layers")
    return [kind == "sliding_attention" for kind in types]


def full_attention_every(sliding: list[bool], where: str) -> int | None:
    """megatron's window_attn_skip_freq for this layout (None: every layer slides), or a refusal
    when the full-attention layers are not every n-th one."""
    if all(sliding):
        return None
    every = sliding.index(False) + 1
    if every < 2 or sliding != [bool((i + 1) % every) for i in range(len(sliding))]:
        raise OcciError(f"{where}: layer_types put full attention at layers "
                        f"{[i for i, s in enumerate(sliding) if not s]}; occi expresses full attention every n-th "
                        "layer (n >= 2, counting from 1) with sliding windows between, as Gemma 3 has it")
    return every


def rope_by_layer_type(config: dict) -> tuple[dict, dict]:
    """(full-attention, sliding-window) RoPE parameters, each with rope_theta and rope_type, from
    transformers 5's per-layer-type rope_parameters or 4's rope_theta / rope_local_base_freq / rope_scaling."""
    params = config.get("rope_parameters") or {}
    if "full_attention" in params or "sliding_attention" in params:
        full = dict(params.get("full_attention") or {})
        local = dict(params.get("sliding_attention") or {})
    else:
        full = {**(config.get("rope_scaling") or {}), "rope_theta": config.get("rope_theta", DEFAULTS["rope_theta"])}
        local = {"rope_theta": config.get("rope_local_base_freq", DEFAULTS["rope_local_base_freq"])}
    full.setdefault("rope_theta", DEFAULTS["rope_theta"])
    local.setdefault("rope_theta", DEFAULTS["rope_local_base_freq"])
    for part in (full, local):
        part["rope_type"] = part.get("rope_type", part.get("type", "default"))
    return full, local


def _whole(value: float, key: str, where: str) -> int:
    if float(value) != int(value):
        raise OcciError(f"{where}: {key} {value} is not a whole number, which megatron-core's rotary base needs")
    return int(value)


def model_fields(config: dict, where: str) -> dict:
    config = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    for key in ("final_logit_softcapping", "attn_logit_softcapping"):
        if config.get(key) is not None:
            raise OcciError(f"{where}: {key} {config[key]} is set (Gemma 2 style); megatron-core has no tanh "
                            "soft-capping, and Gemma 3 bases have none: this base cannot be expressed exactly")
    if config["hidden_activation"] != "gelu_pytorch_tanh":
        raise OcciError(f"{where}: hidden_activation {config['hidden_activation']!r}; occi's Gemma 3 converter "
                        "supports gelu_pytorch_tanh (GeGLU)")
    if config.get("attention_bias"):
        raise OcciError(f"{where}: attention_bias is set; occi's Gemma 3 converter supports attention without biases")
    if config.get("use_bidirectional_attention"):
        raise OcciError(f"{where}: use_bidirectional_attention is set (an embedding model); occi trains causal "
                        "language models")
    sliding = layer_kinds(config, where)
    every = full_attention_every(sliding, where)
    full, local = rope_by_layer_type(config)
    if local["rope_type"] != "default":
        raise OcciError(f"{where}: RoPE scaling {local['rope_type']!r} on the sliding-window layers is not supported; "
                        "occi expresses unscaled RoPE there")
    if full["rope_type"] not in ("default", "linear") and not all(sliding):
        raise OcciError(f"{where}: RoPE scaling {full['rope_type']!r} on the full-attention layers is not supported; "
                        "occi expresses Gemma 3's linear scaling there")
    any_sliding = any(sliding)
    heads = int(config["num_attention_heads"])
    return dict(
        num_layers=len(sliding), hidden_size=int(config["hidden_size"]),
        ffn_hidden_size=int(config["intermediate_size"]), num_attention_heads=heads,
        num_query_groups=int(config.get("num_key_value_heads") or heads), kv_channels=int(config["head_dim"]),
        norm_epsilon=float(config["rms_norm_eps"]), qk_norm=True, tied_embeddings=bool(config["tie_word_embeddings"]),
        vocab_size=int(config["vocab_size"]), mlp_activation="geglu", zero_centered_norms=True, sandwich_norms=True,
        scale_embeddings=True, softmax_scale=float(config["query_pre_attn_scalar"]) ** -0.5,
        sliding_window=int(config["sliding_window"]) if any_sliding else None, full_attention_every=every,
        rotary_base=_whole(full["rope_theta"], "rope_theta", where),
        local_rotary_base=_whole(local["rope_theta"], "rope_local_base_freq", where) if any_sliding else None,
        rope_linear_factor=float(full["factor"]) if full["rope_type"] == "linear" and float(full["factor"]) != 1.0
        else None,
    )


def layer_mappings(model: "ModelConfig", layer: int) -> list[Mapping]:
    hf, mg = f"model.layers.{layer}.", f"decoder.layers.{layer}."
    h, d = model.hidden_size, model.head_dim
    heads, groups = model.num_attention_heads, model.num_query_groups
    return [
        FusedQKV(*(f"{hf}self_attn.{p}_proj.weight" for p in "qkv"), megatron=f"{mg}self_attention.linear_qkv.weight",
                 heads=heads, groups=groups, head_dim=d, columns=(h,)),
        Rename(f"{hf}self_attn.o_proj.weight", f"{mg}self_attention.linear_proj.weight", (h, heads * d)),
        Rename(f"{hf}self_attn.q_norm.weight", f"{mg}self_attention.q_layernorm.weight", (d,)),
        Rename(f"{hf}self_attn.k_norm.weight", f"{mg}self_attention.k_layernorm.weight", (d,)),
        Rename(f"{hf}input_layernorm.weight", f"{mg}input_layernorm.weight", (h,)),
        Rename(f"{hf}post_attention_layernorm.weight", f"{mg}self_attention.linear_proj.post_layernorm.weight", (h,)),
        Rename(f"{hf}pre_feedforward_layernorm.weight", f"{mg}pre_mlp_layernorm.weight", (h,)),
        Rename(f"{hf}post_feedforward_layernorm.weight", f"{mg}mlp.linear_fc2.post_layernorm.weight", (h,)),
        GatedMLP(f"{hf}mlp.gate_proj.weight", f"{hf}mlp.up_proj.weight", f"{mg}mlp.linear_fc1.weight",
                 (model.ffn_hidden_size, h)),
        Rename(f"{hf}mlp.down_proj.weight", f"{mg}mlp.linear_fc2.weight", (h, model.ffn_hidden_size)),
    ]


# ------------------------------------------------------------------------------------------- GGUF

def _gguf_hparams(writer, config: dict, where: str) -> None:
    """llama.cpp's GEMMA3 keys, after refusing what its graph fixes otherwise."""
    fields = model_fields(config, where)
    if fields["full_attention_every"] not in (None, LLAMA_CPP_PATTERN) or (
            fields["local_rotary_base"] not in (None, LLAMA_CPP_LOCAL_BASE)):
        raise OcciError(f"{where}: llama.cpp's GEMMA3 graph fixes full attention every {LLAMA_CPP_PATTERN}th layer and "
                        f"RoPE base {LLAMA_CPP_LOCAL_BASE} on the others; this model has "
                        f"{fields['full_attention_every']} and {fields['local_rotary_base']}, so its GGUF would differ")
    if abs(fields["softmax_scale"] - fields["kv_channels"] ** -0.5) > 1e-9 * fields["softmax_scale"]:
        raise OcciError(f"{where}: query_pre_attn_scalar {config.get('query_pre_attn_scalar')} differs from head_dim "
                        f"{fields['kv_channels']}; llama.cpp's GEMMA3 graph scales attention by head_dim ** -0.5")
    writer.add_rope_freq_base(float(fields["rotary_base"]))  # transformers 5 keeps it per layer type
    writer.add_sliding_window(fields["sliding_window"] or 0)
    # a top-level rope_scaling (transformers 4's form, which occi's export writes) is written by
    # occi/gguf/rope.py for every family; only the per-layer-type form is Gemma's to write
    if fields["rope_linear_factor"] and not config.get("rope_scaling"):
        import gguf  # loads gguf: only when used

        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(fields["rope_linear_factor"])


def _gguf_prepare(hf_name: str, array, config: dict):
    """llama.cpp's RMSNorm multiplies by its weight: Gemma's (1 + w) is written as 1 + w."""
    return array + 1 if hf_name.endswith("norm.weight") else array


FAMILY = Family(
    model_type="gemma3_text", hf_class="Gemma3ForCausalLM", model_fields=model_fields,
    layer_mappings=layer_mappings, global_mappings=common.global_mappings,
    gguf=GgufSpec(arch="GEMMA3", interleave_rope=False, hparams=_gguf_hparams, prepare=_gguf_prepare),
)
