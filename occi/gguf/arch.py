"""What occi/gguf needs of a model family (occi/families/, each family's `gguf` GgufSpec): llama.cpp's
architecture, the hyper-parameters, tensor names and the tensor layout.

llama.cpp's `llama` graph rotates pairs of adjacent dimensions where transformers rotates the two
halves of each head, so for families whose spec says interleave_rope the query and key rows of
every head are reordered (the first half's and second half's dimensions interleaved) for the same
result. Tensor names come from gguf-py's own map of HF names (gguf.get_tensor_name_map), then the
family's own names for what that map lacks.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import gguf
import numpy as np

from occi import families
from occi.errors import OcciError
from occi.families import GgufSpec


def spec_of(config: dict, where: str) -> GgufSpec:
    """The family's GGUF spec, or a one-line OcciError: an unknown family, or the family's refusal."""
    family = families.family_of(config, where)
    if isinstance(family.gguf, str):
        raise OcciError(f"{where}: {family.hf_class} cannot be written as GGUF: {family.gguf}")
    return family.gguf


def gguf_arch(spec: GgufSpec) -> gguf.MODEL_ARCH:
    return gguf.MODEL_ARCH[spec.arch]


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
    key_length: int
    value_length: int
    rope_dims: int


def shape_of(config: dict, where: str) -> Shape:
    """The Llama-like reading of config.json, then the family's GgufSpec.shape changes."""
    try:
        heads = config["num_attention_heads"]
        head_dim = config.get("head_dim") or config["hidden_size"] // heads
        rope = config.get("rope_parameters") or {}  # transformers 5 keeps rope_theta in here (scaling: occi/gguf/rope.py)
        shape = Shape(layers=config["num_hidden_layers"], hidden=config["hidden_size"],
                     ffn=config["intermediate_size"], heads=heads,
                     kv_heads=config.get("num_key_value_heads") or heads,
                     head_dim=head_dim, key_length=head_dim, value_length=head_dim, rope_dims=head_dim,
                     vocab=config["vocab_size"], context=config.get("max_position_embeddings", 2048),
                     rope_theta=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
                     norm_eps=float(config.get("rms_norm_eps", 1e-6)),
                     tied=bool(config.get("tie_word_embeddings", False)))
        spec = families.family_of(config, where).gguf
        return replace(shape, **spec.shape(config)) if isinstance(spec, GgufSpec) and spec.shape else shape
    except KeyError as err:
        raise OcciError(f"{where}: config.json lacks {err.args[0]!r}") from None


def add_hparams(writer: gguf.GGUFWriter, shape: Shape, spec: GgufSpec, config: dict, where: str) -> None:
    """The Llama-like hyperparameters llama.cpp reads for every family, then the family's own."""
    writer.add_vocab_size(shape.vocab)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.norm_eps)
    writer.add_rope_dimension_count(shape.rope_dims)
    if shape.key_length != shape.hidden // shape.heads or shape.value_length != shape.key_length:
        writer.add_key_length(shape.key_length)
        writer.add_value_length(shape.value_length)
    if spec.hparams:
        spec.hparams(writer, config, where)


def interleave_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """Per head, rows [x0..x(d/2-1), y0..y(d/2-1)] -> [x0, y0, x1, y1, ...] (the pairs llama.cpp rotates)."""
    rows = weight.shape[0]
    per_head = rows // heads
    return weight.reshape(heads, 2, per_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def tensor_name(names: gguf.TensorNameMap, spec: GgufSpec, hf_name: str, where: str) -> str:
    mapped = (spec.tensor_name(hf_name) if spec.tensor_name else None) or \
        names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if mapped is None:
        raise OcciError(f"{where}: tensor {hf_name!r} has no GGUF name for this architecture")
    return mapped


def prepare(spec: GgufSpec, shape: Shape, config: dict, hf_name: str, data: np.ndarray) -> np.ndarray:
    """The tensor as llama.cpp expects it (the family's own change, q/k reordered for `llama`)."""
    if spec.prepare:
        data = spec.prepare(hf_name, data, config)
    if spec.interleave_rope and hf_name.endswith(("self_attn.q_proj.weight", "self_attn.q_proj.bias")):
        return interleave_rows(data, shape.heads)
    if spec.interleave_rope and hf_name.endswith(("self_attn.k_proj.weight", "self_attn.k_proj.bias")):
        return interleave_rows(data, shape.kv_heads)
    return data
