"""Hugging Face decoder architectures <-> occi's megatron-core GPTModel: shape and weight names.

A base model's config.json decides the shape (occi/train/config.py ModelConfig): layers, widths,
heads, query groups, head width, RoPE base and Llama 3.1 scaling, norm epsilon, tied
embeddings, qkv biases, q/k norm, sliding window, vocabulary. Nothing is typed twice.

Weights, per layer (megatron's local layer spec; the Transformer Engine spec keeps the two
pre-norms inside linear_qkv / linear_fc1 as layer_norm_weight, see MEGATRON_ALIASES):
- self_attention.linear_qkv holds, per key/value group, that group's query heads, then its key
  head, then its value head (weight and, for Qwen2, bias);
- mlp.linear_fc1 holds the SwiGLU gate projection, then the up projection;
- the other tensors are renamed one to one.
The same correspondence as Megatron-Bridge's Llama/Mistral/Qwen2/Qwen3 bridges (QKVMapping,
GatedMLPMapping, AutoMapping), written for occi since Megatron-Bridge needs Transformer Engine.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

from occi.errors import OcciError
from occi.train import hf_moe
from occi.train.config import ModelConfig

ARCHITECTURES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                 "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", **hf_moe.ARCHITECTURES}
"""model_type in config.json -> the transformers class an export names (mixtures of experts:
occi/train/hf_moe.py)."""

ONE_TO_ONE = {
    "self_attn.o_proj.weight": "self_attention.linear_proj.weight",
    "mlp.down_proj.weight": "mlp.linear_fc2.weight",
    "input_layernorm.weight": "input_layernorm.weight",
    "post_attention_layernorm.weight": "pre_mlp_layernorm.weight",
    "self_attn.q_norm.weight": "self_attention.q_layernorm.weight",
    "self_attn.k_norm.weight": "self_attention.k_layernorm.weight",
}
"""Per-layer tensors renamed one to one: transformers name -> megatron name."""

MEGATRON_ALIASES = {"self_attention.linear_qkv.layer_norm_weight": "input_layernorm.weight",
                    "mlp.linear_fc1.layer_norm_weight": "pre_mlp_layernorm.weight"}
"""Transformer Engine spec names -> the local spec names used here."""

LLAMA3_SCALING = {"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
"""The Llama 3.1 scaling constants megatron-core 0.16 implements (only the factor is a parameter)."""


def read_config(folder: Path) -> dict:
    """config.json of a base model folder, checked to be a supported architecture."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OcciError(f"{path}: no such file; a base model folder needs config.json and *.safetensors") from None
    except (OSError, ValueError) as err:
        raise OcciError(f"{path}: cannot read: {err}") from None
    kind = config.get("model_type")
    if kind not in ARCHITECTURES:
        named = ", ".join(config.get("architectures") or []) or kind
        raise OcciError(f"{path}: architecture {named!r} (model_type {kind!r}) is not supported; "
                        f"supported: {', '.join(ARCHITECTURES.values())}")
    return config


def rope(config: dict) -> tuple[float, dict]:
    """(RoPE base, scaling parameters or {}) from transformers 5's rope_parameters or 4's
    top-level rope_theta and rope_scaling."""
    params = dict(config.get("rope_parameters") or {})
    theta = params.pop("rope_theta", config.get("rope_theta", 10_000.0))
    scaling = dict(config.get("rope_scaling") or params)
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    return float(theta), ({} if kind == "default" else {**scaling, "rope_type": kind})


def model_config(config: dict, seq_length: int | None, where: str) -> ModelConfig:
    """The megatron shape of a base model's config.json; seq_length None: the base's context, at
    most 4096 tokens."""
    kind = config["model_type"]
    if config.get("hidden_act", "silu") != "silu":
        raise OcciError(f"{where}: hidden_act {config['hidden_act']!r}; occi's converter supports silu (SwiGLU)")
    if config.get("mlp_bias"):
        raise OcciError(f"{where}: mlp_bias is set; occi's converter supports MLPs without biases")
    if config.get("attention_bias"):  # Qwen2 biases q, k, v always and has no such key
        raise OcciError(f"{where}: attention_bias also biases o_proj, which megatron-core's layer has no place "
                        "for; occi's converter supports it only as Qwen2 has it (q, k and v)")
    theta, scaling = rope(config)
    factor, linear = None, None
    if scaling.get("rope_type") == "linear":
        linear = float(scaling["factor"])
    elif scaling.get("rope_type") == "yarn":
        raise OcciError(f"{where}: RoPE scaling 'yarn' is not supported: megatron-core 0.16's YaRN embedding runs on "
                        "CUDA only and its GPTModel drops the YaRN attention factor, so this base cannot be "
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
    window = config.get("sliding_window")
    if kind.startswith("qwen") and not config.get("use_sliding_window"):
        window = None
    context = int(config.get("max_position_embeddings") or 4096)
    heads = int(config["num_attention_heads"])
    head_dim = config.get("head_dim") or int(config["hidden_size"]) // heads
    moe = hf_moe.model_fields(config, where) if kind in hf_moe.ARCHITECTURES else {}
    if theta != int(theta):
        raise OcciError(f"{where}: rope_theta {theta} is not a whole number, which megatron-core's rotary_base needs")
    try:
        return ModelConfig(
            num_layers=int(config["num_hidden_layers"]), hidden_size=int(config["hidden_size"]),
            ffn_hidden_size=int(config["intermediate_size"]), num_attention_heads=heads,
            num_query_groups=int(config.get("num_key_value_heads") or heads),
            seq_length=seq_length or min(context, 4096), description=f"imported {ARCHITECTURES[kind]}",
            rotary_base=int(theta), norm_epsilon=float(config.get("rms_norm_eps", 1e-6)),
            kv_channels=int(head_dim), qkv_bias=kind == "qwen2" or (kind == "qwen2_moe" and config.get("qkv_bias", True)),
            qk_norm=kind in ("qwen3", "qwen3_moe"),
            tied_embeddings=bool(config.get("tie_word_embeddings", False)), rope_scaling_factor=factor,
            rope_linear_factor=linear,
            sliding_window=int(window) if window else None, vocab_size=int(config["vocab_size"]),
            make_vocab_size_divisible_by=1, **moe,
        )
    except KeyError as err:
        raise OcciError(f"{where}: config.json lacks {err.args[0]!r}") from None
    except ValueError as err:
        raise OcciError(f"{where}: {err}") from None


# ------------------------------------------------------------------------- transformers -> megatron

def megatron_layer_tensor(model: ModelConfig, layer: int, name: str, read: Callable[[str], torch.Tensor],
                          kind: str = "llama") -> torch.Tensor:
    """One megatron tensor of a layer (full, TP=1 and EP=1 layout), reading only the transformers
    tensors it is made of."""
    src = f"model.layers.{layer}."
    if name.startswith("self_attention.linear_qkv."):
        suffix = name.rsplit(".", 1)[1]
        return fuse_qkv(model, *(read(f"{src}self_attn.{p}_proj.{suffix}") for p in "qkv"))
    if model.moe_layers[layer] and name.startswith(("mlp.router.", "mlp.experts.", "mlp.shared_experts.")):
        return hf_moe.megatron_from_hf(model, kind, src, name, read)
    if name == "mlp.linear_fc1.weight":
        return torch.cat([read(src + "mlp.gate_proj.weight"), read(src + "mlp.up_proj.weight")])
    for hf_name, megatron_name in ONE_TO_ONE.items():
        if megatron_name == name:
            return read(src + hf_name)
    raise KeyError(f"no transformers tensor makes megatron's decoder.layers.{layer}.{name}")


def fuse_qkv(model: ModelConfig, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """q [heads*d, ...], k and v [groups*d, ...] -> per group: its query heads, its key, its value."""
    groups, d = model.num_query_groups, model.head_dim
    rest = q.shape[1:]
    q = q.reshape(groups, -1, *rest)
    return torch.cat([q, k.reshape(groups, d, *rest), v.reshape(groups, d, *rest)], dim=1).reshape(-1, *rest)


def hf_tensor_names(model: ModelConfig, kind: str = "llama") -> list[str]:
    """Every transformers tensor a base of this shape must hold."""
    return list(hf_tensor_shapes(model, kind))


def hf_tensor_shapes(model: ModelConfig, kind: str = "llama") -> dict[str, tuple[int, ...]]:
    """Every transformers tensor a base of this shape must hold, with the shape config.json gives it
    (a linear layer's weight is [out, in])."""
    h, d = model.hidden_size, model.head_dim
    q, kv = model.num_attention_heads * d, model.num_query_groups * d
    shapes = {"model.embed_tokens.weight": (model.vocab_size, h), "model.norm.weight": (h,)}
    if not model.tied_embeddings:
        shapes["lm_head.weight"] = (model.vocab_size, h)
    attention = {"self_attn.q_proj.weight": (q, h), "self_attn.k_proj.weight": (kv, h),
                 "self_attn.v_proj.weight": (kv, h)}
    if model.qkv_bias:
        attention.update({"self_attn.q_proj.bias": (q,), "self_attn.k_proj.bias": (kv,), "self_attn.v_proj.bias": (kv,)})
    attention.update({"self_attn.o_proj.weight": (h, q), "input_layernorm.weight": (h,),
                      "post_attention_layernorm.weight": (h,)})
    if model.qk_norm:
        attention.update({"self_attn.q_norm.weight": (d,), "self_attn.k_norm.weight": (d,)})
    f = model.ffn_hidden_size
    dense = {"mlp.gate_proj.weight": (f, h), "mlp.up_proj.weight": (f, h), "mlp.down_proj.weight": (h, f)}
    experts = hf_moe.disk_shapes(model, kind) if model.is_moe else {}
    for layer, moe in enumerate(model.moe_layers):
        shapes.update({f"model.layers.{layer}.{name}": shape
                       for name, shape in {**attention, **(experts if moe else dense)}.items()})
    return shapes


# ------------------------------------------------------------------------- megatron -> transformers

def megatron_to_hf(state: dict[str, torch.Tensor], model: ModelConfig) -> dict[str, torch.Tensor]:
    """A full (TP=1, PP=1) GPTModel state dict -> transformers tensors."""
    state = {_local_name(name): tensor for name, tensor in state.items()}
    heads, groups, d = model.num_attention_heads, model.num_query_groups, model.head_dim
    out = {"model.embed_tokens.weight": state["embedding.word_embeddings.weight"],
           "model.norm.weight": state["decoder.final_layernorm.weight"]}
    if not model.tied_embeddings:
        out["lm_head.weight"] = state["output_layer.weight"]
    for layer in range(model.num_layers):
        src, dst = f"decoder.layers.{layer}.", f"model.layers.{layer}."
        for suffix in ("weight", "bias") if model.qkv_bias else ("weight",):
            qkv = state[src + f"self_attention.linear_qkv.{suffix}"]
            rest = qkv.shape[1:]
            q, k, v = torch.split(qkv.reshape(groups, -1, *rest), [heads // groups * d, d, d], dim=1)
            out[dst + f"self_attn.q_proj.{suffix}"] = q.reshape(heads * d, *rest)
            out[dst + f"self_attn.k_proj.{suffix}"] = k.reshape(groups * d, *rest)
            out[dst + f"self_attn.v_proj.{suffix}"] = v.reshape(groups * d, *rest)
        moe = model.moe_layers[layer]
        if moe:
            out.update(hf_moe.hf_from_megatron(state, model, src, dst))
        else:
            gate, up = torch.chunk(state[src + "mlp.linear_fc1.weight"], 2, dim=0)
            out[dst + "mlp.gate_proj.weight"], out[dst + "mlp.up_proj.weight"] = gate, up
        for hf_name, megatron_name in ONE_TO_ONE.items():
            if ("_norm." in hf_name and not model.qk_norm) or (moe and hf_name.startswith("mlp.")):
                continue
            out[dst + hf_name] = state[src + megatron_name]
    return {name: tensor.detach().clone().contiguous() for name, tensor in out.items()}


def _local_name(name: str) -> str:
    for te_suffix, local_suffix in MEGATRON_ALIASES.items():
        if name.endswith(te_suffix):
            return name[: -len(te_suffix)] + local_suffix
    return name


def hf_config(model: ModelConfig, base: dict | None, vocab_size: int, special: dict[str, int | None],
              dtype: torch.dtype):
    """The transformers config of an export: the base's architecture (its config.json with the
    run's vocabulary size) or, without a base, Llama with the tokenizer's special ids."""
    import transformers

    if base is None:
        kind, values = export_kind(model), {
            "hidden_size": model.hidden_size, "intermediate_size": model.ffn_hidden_size,
            "num_hidden_layers": model.num_layers, "num_attention_heads": model.num_attention_heads,
            "num_key_value_heads": model.num_query_groups, "head_dim": model.head_dim, "hidden_act": "silu",
            "max_position_embeddings": model.seq_length, "rms_norm_eps": model.norm_epsilon,
            "rope_theta": float(model.rotary_base), "attention_bias": False, "mlp_bias": False,
            "tie_word_embeddings": model.tied_embeddings, "bos_token_id": special.get("bos"),
            "eos_token_id": special.get("eos"), "pad_token_id": special.get("pad")}
        if model.is_moe:
            values.update(hf_moe.hf_values(model, kind))
    else:
        kind = base["model_type"]
        values = {k: v for k, v in base.items() if not k.startswith("_") and k not in
                  ("architectures", "model_type", "transformers_version", "torch_dtype", "dtype")}
    values["vocab_size"] = vocab_size
    config = transformers.CONFIG_MAPPING[kind](**values)
    config.architectures = [ARCHITECTURES[kind]]
    config.dtype = dtype
    return config


def export_kind(model: ModelConfig) -> str:
    """The model_type of a recipe's export (no base): Llama, or a mixture-of-experts family."""
    return hf_moe.export_kind(model) if model.is_moe else "llama"


def model_class(kind: str):
    import transformers

    return getattr(transformers, ARCHITECTURES[kind])
