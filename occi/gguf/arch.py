"""The HF config's architecture -> GGUF's architecture, hyperparameter keys and tensor layout.

Dense decoder-only families that llama.cpp runs with the same graph as Llama or Qwen:
- Llama and Mistral -> `llama`. llama.cpp rotates pairs of adjacent dimensions, transformers
  rotates the two halves of each head, so the query and key rows of every head are reordered
  (the first half's and second half's dimensions interleaved) for the same result.
- Qwen2 -> `qwen2` (biases on q, k, v), Qwen3 -> `qwen3` (RMSNorm on each head's query and key):
  llama.cpp rotates halves for these, so their weights are kept as they are.
Mixtures of experts (experts stacked per layer: occi/gguf/experts.py):
- Mixtral -> `llama` with experts (top-k weights renormalised, as Mixtral does);
- Qwen3-MoE -> `qwen3moe`: llama.cpp renormalises the top-k weights and makes every layer a
  mixture, so norm_topk_prob false and dense layers (mlp_only_layers, decoder_sparse_step) are refused;
- Qwen2-MoE -> `qwen2moe` (a shared expert with its sigmoid gate): llama.cpp keeps the top-k
  weights as softmaxed, so norm_topk_prob true and dense layers are refused; it needs an output
  layer of its own, so tied embeddings are refused.
Tensor names come from gguf-py's own map of HF names (gguf.get_tensor_name_map).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gguf
import numpy as np

from occi.errors import OcciError


@dataclass(frozen=True)
class Arch:
    hf_name: str
    """The class named in config.json's `architectures`."""
    gguf_arch: gguf.MODEL_ARCH
    """llama.cpp's architecture."""
    interleave_rope: bool
    """Reorder q/k rows from transformers' half-split rotary layout to llama.cpp's pairwise one."""
    hparams: Callable[[gguf.GGUFWriter, dict, str], None] | None = None
    """`hparams(writer, config, where)`: the architecture's own hyperparameters (one-line OcciError
    for what llama.cpp's graph cannot run exactly)."""


def _experts(writer: gguf.GGUFWriter, config: dict) -> None:
    writer.add_expert_count(int(config.get("num_local_experts") or config["num_experts"]))
    writer.add_expert_used_count(int(config["num_experts_per_tok"]))


def _every_layer_a_mixture(config: dict, where: str) -> None:
    if config.get("mlp_only_layers") or int(config.get("decoder_sparse_step") or 1) != 1:
        raise OcciError(f"{where}: dense layers among the experts (mlp_only_layers {config.get('mlp_only_layers')}, "
                        f"decoder_sparse_step {config.get('decoder_sparse_step')}) cannot be written as GGUF: "
                        "llama.cpp's graph for this architecture makes every layer a mixture of experts")


def _routing(config: dict, where: str, renormalised: bool) -> None:
    if bool(config.get("norm_topk_prob", False)) != renormalised:
        raise OcciError(f"{where}: norm_topk_prob {config.get('norm_topk_prob')} cannot be written as GGUF: "
                        f"llama.cpp's graph for this architecture {'renormalises' if renormalised else 'keeps'} "
                        f"the top-k routing weights (norm_topk_prob {str(renormalised).lower()})")


def mixtral_hparams(writer: gguf.GGUFWriter, config: dict, where: str) -> None:
    _experts(writer, config)


def qwen3_moe_hparams(writer: gguf.GGUFWriter, config: dict, where: str) -> None:
    _every_layer_a_mixture(config, where)
    _routing(config, where, renormalised=True)
    _experts(writer, config)
    writer.add_expert_feed_forward_length(int(config["moe_intermediate_size"]))


def qwen2_moe_hparams(writer: gguf.GGUFWriter, config: dict, where: str) -> None:
    _every_layer_a_mixture(config, where)
    _routing(config, where, renormalised=False)
    if config.get("tie_word_embeddings"):
        raise OcciError(f"{where}: tie_word_embeddings true cannot be written as GGUF for Qwen2-MoE: "
                        "llama.cpp's qwen2moe graph needs an output layer of its own")
    _experts(writer, config)
    writer.add_expert_feed_forward_length(int(config["moe_intermediate_size"]))
    writer.add_expert_shared_feed_forward_length(int(config["shared_expert_intermediate_size"]))


ARCHS = {a.hf_name: a for a in [
    Arch("LlamaForCausalLM", gguf.MODEL_ARCH.LLAMA, True),
    Arch("MistralForCausalLM", gguf.MODEL_ARCH.LLAMA, True),
    Arch("Qwen2ForCausalLM", gguf.MODEL_ARCH.QWEN2, False),
    Arch("Qwen3ForCausalLM", gguf.MODEL_ARCH.QWEN3, False),
    Arch("MixtralForCausalLM", gguf.MODEL_ARCH.LLAMA, True, mixtral_hparams),
    Arch("Qwen3MoeForCausalLM", gguf.MODEL_ARCH.QWEN3MOE, False, qwen3_moe_hparams),
    Arch("Qwen2MoeForCausalLM", gguf.MODEL_ARCH.QWEN2MOE, False, qwen2_moe_hparams),
]}


def arch_of(config: dict, where: str) -> Arch:
    names = config.get("architectures") or []
    for name in names:
        if name in ARCHS:
            return ARCHS[name]
    raise OcciError(f"{where}: architectures {names or '(none)'} cannot be written as GGUF by occi; "
                    f"expected one of {', '.join(ARCHS)}")


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    context: int
    rope_theta: float
    norm_eps: float
    tied: bool


def shape_of(config: dict, where: str) -> Shape:
    try:
        heads = config["num_attention_heads"]
        rope = config.get("rope_parameters") or {}  # transformers 5 keeps rope_theta in here
        return Shape(layers=config["num_hidden_layers"], hidden=config["hidden_size"],
                     ffn=config["intermediate_size"], heads=heads,
                     kv_heads=config.get("num_key_value_heads") or heads,
                     head_dim=config.get("head_dim") or config["hidden_size"] // heads,
                     vocab=config["vocab_size"], context=config.get("max_position_embeddings", 2048),
                     rope_theta=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
                     norm_eps=float(config.get("rms_norm_eps", 1e-6)),
                     tied=bool(config.get("tie_word_embeddings", False)))
    except KeyError as err:
        raise OcciError(f"{where}: config.json lacks {err.args[0]!r}") from None


def add_hparams(writer: gguf.GGUFWriter, shape: Shape) -> None:
    """The hyperparameters llama.cpp reads for these architectures."""
    writer.add_vocab_size(shape.vocab)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.norm_eps)
    writer.add_rope_dimension_count(shape.head_dim)
    if shape.head_dim != shape.hidden // shape.heads:
        writer.add_key_length(shape.head_dim)
        writer.add_value_length(shape.head_dim)


def interleave_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """Per head, rows [x0..x(d/2-1), y0..y(d/2-1)] -> [x0, y0, x1, y1, ...] (the pairs llama.cpp rotates)."""
    rows = weight.shape[0]
    per_head = rows // heads
    return weight.reshape(heads, 2, per_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def tensor_name(names: gguf.TensorNameMap, hf_name: str, where: str) -> str:
    mapped = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if mapped is None:
        raise OcciError(f"{where}: tensor {hf_name!r} has no GGUF name for this architecture")
    return mapped


def prepare(arch: Arch, shape: Shape, hf_name: str, data: np.ndarray) -> np.ndarray:
    """The tensor as llama.cpp expects it (q/k reordered for `llama`)."""
    if arch.interleave_rope and hf_name.endswith(("self_attn.q_proj.weight", "self_attn.q_proj.bias")):
        return interleave_rows(data, shape.heads)
    if arch.interleave_rope and hf_name.endswith(("self_attn.k_proj.weight", "self_attn.k_proj.bias")):
        return interleave_rows(data, shape.kv_heads)
    return data
