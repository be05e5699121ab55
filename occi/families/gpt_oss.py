"""gpt-oss (GptOssForCausalLM): OpenAI's open-weight mixture of experts.

Unlike Mixtral: biases on every linear layer (q, k, v, o, router, experts), a learnable attention
sink per head (megatron's softmax_type learnable), sliding-window layers alternating with full
attention (layer_types), YaRN RoPE, and experts whose gate is clamped x * sigmoid(1.702 x) times
(clamped up + 1). Each runs on megatron-core's local spec as TransformerConfig settings
(occi/train/model.py); only the gate activation is occi's (occi/train/layers/activations.py).

transformers stores each layer's experts fused, gate and up columns interleaved:
gate_up_proj [experts, hidden, 2 x inner] (gate = columns 0, 2, 4...), gate_up_proj_bias,
down_proj [experts, inner, hidden], down_proj_bias. The hub checkpoints store gate_up_proj and
down_proj as MXFP4 blocks and scales: the import dequantizes them one expert at a time
(occi/train/mxfp4.py); an export writes bf16/fp32 tensors.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from occi.errors import OcciError
from occi.families import Family, GgufSpec, common, experts
from occi.families.gemma3_text import full_attention_every, layer_kinds
from occi.families.mapping import Mapping, Rename

if TYPE_CHECKING:
    from occi.train.config import ModelConfig

GATE_ALPHA = 1.702
"""The sigmoid's slope in the expert gate that occi's quick_gelu has (swiglu_alpha)."""


def _rope_fields(config: dict, where: str) -> dict:
    theta, scaling = common.rope(config)
    if theta != int(theta):
        raise OcciError(f"{where}: rope_theta {theta} is not a whole number, which megatron-core's rotary_base needs")
    if not scaling:
        return {"rotary_base": int(theta)}
    if scaling["rope_type"] != "yarn":
        raise OcciError(f"{where}: RoPE scaling {scaling['rope_type']!r} is not supported for gpt-oss; occi expresses "
                        "YaRN ('yarn') and none")
    extra = sorted(k for k in ("attention_factor", "mscale", "mscale_all_dim") if scaling.get(k) is not None)
    if extra or scaling.get("truncate", True) is not False:
        raise OcciError(f"{where}: YaRN with {extra[0] if extra else 'truncate true'} is not supported; occi "
                        "expresses gpt-oss' YaRN (truncate false, the default attention factor)")
    return {"rotary_base": int(theta), "yarn_factor": float(scaling["factor"]),
            "yarn_original_context": int(scaling.get("original_max_position_embeddings", 4096)),
            "yarn_beta_fast": float(scaling.get("beta_fast", 32.0)),
            "yarn_beta_slow": float(scaling.get("beta_slow", 1.0))}


def _fields(config: dict, where: str) -> dict:
    if not config.get("attention_bias", True):
        raise OcciError(f"{where}: attention_bias false; occi's gpt-oss has biases on every linear layer as "
                        "the published models do")
    if float(config.get("swiglu_alpha", GATE_ALPHA)) != GATE_ALPHA:
        raise OcciError(f"{where}: swiglu_alpha {config['swiglu_alpha']}; occi's gpt-oss gate has {GATE_ALPHA}")
    sliding = layer_kinds(config, where)
    window = config.get("sliding_window") if any(sliding) else None
    heads = int(config["num_attention_heads"])
    inner = int(config["intermediate_size"])
    return {"num_layers": int(config["num_hidden_layers"]), "hidden_size": int(config["hidden_size"]),
            "ffn_hidden_size": inner, "moe_ffn_hidden_size": inner, "num_attention_heads": heads,
            "num_query_groups": int(config.get("num_key_value_heads") or heads),
            "kv_channels": int(config.get("head_dim") or int(config["hidden_size"]) // heads),
            "norm_epsilon": float(config.get("rms_norm_eps", 1e-5)),
            "tied_embeddings": bool(config.get("tie_word_embeddings", False)), "vocab_size": int(config["vocab_size"]),
            "qkv_bias": True, "linear_biases": True, "attention_sinks": True, "mlp_activation": "quick_geglu",
            "glu_clamp": float(config.get("swiglu_limit", 7.0)), "glu_linear_offset": 1.0,
            "sliding_window": int(window) if window else None,
            "full_attention_every": full_attention_every(sliding, where) if window else None,
            **_rope_fields(config, where), **experts.routing_fields(config)}


@dataclass(frozen=True)
class InterleavedExperts(Mapping):
    """The experts of one gpt-oss layer: transformers' fused tensors (gate and up columns
    interleaved) <-> megatron's per-expert linear_fc1 (gate rows, then up rows) and linear_fc2,
    weights and biases. An import reads one expert's slice at a time (`read(name, expert)`)."""
    hf_prefix: str
    """`model.layers.N.mlp.experts.`"""
    megatron_prefix: str
    """`decoder.layers.N.mlp.experts`"""
    experts: int
    ffn: int
    hidden: int

    def _mg(self, expert: int, which: int, kind: str) -> str:
        return f"{self.megatron_prefix}.local_experts.{expert}.linear_fc{which}.{kind}"

    def megatron_names(self):
        return tuple(self._mg(e, which, kind) for e in range(self.experts) for which in (1, 2)
                     for kind in ("weight", "bias"))

    def hf_shapes(self):
        e, f, h, p = self.experts, self.ffn, self.hidden, self.hf_prefix
        return {f"{p}gate_up_proj": (e, h, 2 * f), f"{p}gate_up_proj_bias": (e, 2 * f),
                f"{p}down_proj": (e, f, h), f"{p}down_proj_bias": (e, h)}

    def to_megatron(self, name, read):
        import torch  # loads torch: only when used

        match = re.fullmatch(re.escape(self.megatron_prefix) + r"\.local_experts\.(\d+)\.linear_fc([12])\.(\w+)", name)
        if not match:
            raise KeyError(name)
        expert, which, kind = int(match.group(1)), match.group(2), match.group(3)
        if which == "2":
            value = read(f"{self.hf_prefix}down_proj" + ("_bias" if kind == "bias" else ""), expert)
            return value if kind == "bias" else value.T.contiguous()
        if kind == "bias":
            value = read(f"{self.hf_prefix}gate_up_proj_bias", expert)
            return torch.cat([value[0::2], value[1::2]])
        value = read(f"{self.hf_prefix}gate_up_proj", expert).T  # [2 x inner, hidden], rows interleaved
        return torch.cat([value[0::2], value[1::2]]).contiguous()

    def to_hf(self, state):
        import torch  # loads torch: only when used

        def interleave(fc1: torch.Tensor) -> torch.Tensor:
            gate, up = torch.chunk(fc1, 2, dim=0)
            return torch.stack([gate, up], dim=1).reshape(fc1.shape)

        experts_ = range(self.experts)
        p = self.hf_prefix
        return {f"{p}gate_up_proj": torch.stack([interleave(state[self._mg(e, 1, "weight")]).T for e in experts_]),
                f"{p}gate_up_proj_bias": torch.stack([interleave(state[self._mg(e, 1, "bias")]) for e in experts_]),
                f"{p}down_proj": torch.stack([state[self._mg(e, 2, "weight")].T for e in experts_]),
                f"{p}down_proj_bias": torch.stack([state[self._mg(e, 2, "bias")] for e in experts_])}


def _layer(model: "ModelConfig", layer: int) -> list[Mapping]:
    hf, mg = f"model.layers.{layer}.", f"decoder.layers.{layer}."
    h, n = model.hidden_size, model.num_experts
    return common.attention_mappings(model, layer) + [
        Rename(f"{hf}self_attn.o_proj.bias", f"{mg}self_attention.linear_proj.bias", (h,)),
        Rename(f"{hf}self_attn.sinks", f"{mg}self_attention.core_attention.softmax_offset",
               (model.num_attention_heads,)),
        Rename(f"{hf}mlp.router.weight", f"{mg}mlp.router.weight", (n, h)),
        Rename(f"{hf}mlp.router.bias", f"{mg}mlp.router.bias", (n,)),
        InterleavedExperts(f"{hf}mlp.experts.", f"{mg}mlp.experts", n, model.expert_ffn_hidden_size, h)]


# ------------------------------------------------------------------------------------------- GGUF

LLAMA_CPP_SWIGLU_LIMIT = 7.0
"""The clamp llama.cpp's gpt-oss graph fixes for the expert gate and up projection."""


def _gguf_hparams(writer, config: dict, where: str) -> None:
    """llama.cpp's gpt-oss keys, after refusing what its graph fixes otherwise: the clamp, and
    sliding-window attention on the even layers (0, 2, ...) with full attention between."""
    limit = float(config.get("swiglu_limit", LLAMA_CPP_SWIGLU_LIMIT))
    if limit != LLAMA_CPP_SWIGLU_LIMIT:
        raise OcciError(f"{where}: swiglu_limit {limit} cannot be written as GGUF: llama.cpp's gpt-oss graph clamps "
                        f"the expert gate and up projection at {LLAMA_CPP_SWIGLU_LIMIT}")
    sliding = layer_kinds(config, where)
    if sliding != [layer % 2 == 0 for layer in range(len(sliding))] or not config.get("sliding_window"):
        raise OcciError(f"{where}: layer_types {config.get('layer_types')} (sliding_window "
                        f"{config.get('sliding_window')}) cannot be written as GGUF: llama.cpp's gpt-oss graph "
                        "slides a window on layers 0, 2, 4... and attends fully on the others")
    writer.add_sliding_window(int(config["sliding_window"]))
    writer.add_expert_feed_forward_length(int(config["intermediate_size"]))
    experts.gguf_experts(writer, config)


def _gguf_split(hf_name: str, shape: tuple[int, ...], config: dict):
    """transformers' fused experts -> llama.cpp's ffn_{gate,up,down}_exps weights and biases, each
    expert's weight [out, in] as a linear layer holds it (transformers stores [in, out])."""
    import numpy as np  # loads numpy: only when used

    prefix, _, role = hf_name.rpartition(".")
    if not prefix.endswith("mlp.experts"):
        return None
    if role == "gate_up_proj":  # [experts, hidden, 2 x inner], gate and up columns interleaved
        experts_, hidden, both = shape
        return [(f"{prefix}.{part}.weight", (experts_, both // 2, hidden),
                 lambda a, first=first: np.ascontiguousarray(a[:, :, first::2].transpose(0, 2, 1)))
                for first, part in ((0, "gate_proj"), (1, "up_proj"))]
    if role == "gate_up_proj_bias":  # [experts, 2 x inner]
        return [(f"{prefix}.{part}.bias", (shape[0], shape[1] // 2), lambda a, first=first: np.ascontiguousarray(
            a[:, first::2])) for first, part in ((0, "gate_proj"), (1, "up_proj"))]
    if role == "down_proj":  # [experts, inner, hidden]
        return [(f"{prefix}.down_proj.weight", (shape[0], shape[2], shape[1]),
                 lambda a: np.ascontiguousarray(a.transpose(0, 2, 1)))]
    if role == "down_proj_bias":
        return [(f"{prefix}.down_proj.bias", shape, None)]
    return None


def _gguf_tensor_name(hf_name: str) -> str | None:
    """The attention sinks: gguf-py maps them without the `.weight` llama.cpp loads them by."""
    match = re.fullmatch(r"model\.layers\.(\d+)\.self_attn\.sinks", hf_name)
    return f"blk.{match.group(1)}.attn_sinks.weight" if match else None


FAMILY = Family(
    model_type="gpt_oss", hf_class="GptOssForCausalLM", model_fields=_fields, layer_mappings=_layer,
    global_mappings=common.global_mappings, experts=True,
    gguf=GgufSpec(arch="GPT_OSS", interleave_rope=False, hparams=_gguf_hparams, split=_gguf_split,
                  tensor_name=_gguf_tensor_name),
)
