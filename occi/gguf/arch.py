"""The HF config's architecture -> GGUF's architecture, hyperparameter keys and tensor layout.

Dense decoder-only families that llama.cpp runs with the same graph as Llama or Qwen:
- Llama and Mistral -> `llama`. llama.cpp rotates pairs of adjacent dimensions, transformers
  rotates the two halves of each head, so the query and key rows of every head are reordered
  (the first half's and second half's dimensions interleaved) for the same result.
- Qwen2 -> `qwen2` (biases on q, k, v), Qwen3 -> `qwen3` (RMSNorm on each head's query and key):
  llama.cpp rotates halves for these, so their weights are kept as they are.
Tensor names come from gguf-py's own map of HF names (gguf.get_tensor_name_map).
"""
from __future__ import annotations

from dataclasses import dataclass

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


ARCHS = {a.hf_name: a for a in [
    Arch("LlamaForCausalLM", gguf.MODEL_ARCH.LLAMA, True),
    Arch("MistralForCausalLM", gguf.MODEL_ARCH.LLAMA, True),
    Arch("Qwen2ForCausalLM", gguf.MODEL_ARCH.QWEN2, False),
    Arch("Qwen3ForCausalLM", gguf.MODEL_ARCH.QWEN3, False),
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
        scaling = config.get("rope_scaling") or {}
        kind = (scaling.get("rope_type") or scaling.get("type") or rope.get("rope_type") or "default")
        if kind != "default":
            raise OcciError(f"{where}: rope scaling {kind!r} is not written to GGUF by occi yet (only unscaled RoPE)")
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
