"""The shared kinds of tensor mapping between a transformers checkpoint and occi's megatron-core
GPTModel (local layer spec). A family lists its tensors as Mapping objects (full names on both
sides); import, export and the import's shape check read only these lists.

Each kind knows:
- `megatron_names()`: the megatron tensors it makes (full TP=1, EP=1 layout);
- `hf_shapes()`: the transformers tensors a checkpoint on disk holds for it, with their shapes;
- `to_megatron(name, read)`: one megatron tensor from the transformers tensors (`read(hf_name)`);
- `to_hf(state)`: the transformers tensors, as a transformers model holds them in memory, from a
  megatron state dict.
Like Megatron-Bridge's AutoMapping / QKVMapping / GatedMLPMapping, written for occi (Megatron-Bridge
needs Transformer Engine). The conversions import occi/families/tensors.py (torch) when called.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

Reader = Callable[[str], "torch.Tensor"]
Shape = tuple[int, ...]

MEGATRON_ALIASES = {"self_attention.linear_qkv.layer_norm_weight": "input_layernorm.weight",
                    "mlp.linear_fc1.layer_norm_weight": "pre_mlp_layernorm.weight"}
"""Transformer Engine spec names -> the local spec names the mappings use."""


def local_name(name: str) -> str:
    """A megatron tensor name with the Transformer Engine spec's fused norms named as the local spec does."""
    for te_suffix, local_suffix in MEGATRON_ALIASES.items():
        if name.endswith(te_suffix):
            return name[: -len(te_suffix)] + local_suffix
    return name


class Mapping:
    """One or more megatron tensors <-> the transformers tensors they are made of."""

    def megatron_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def hf_shapes(self) -> dict[str, Shape]:
        raise NotImplementedError

    def to_megatron(self, name: str, read: Reader) -> "torch.Tensor":
        raise NotImplementedError

    def to_hf(self, state: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
        raise NotImplementedError


@dataclass(frozen=True)
class Rename(Mapping):
    """One tensor under another name, optionally with its values transformed each way (Gemma's
    (1 + w) norms: import_value and export_value are inverse functions of a tensor)."""
    hf: str
    megatron: str
    shape: Shape
    import_value: Callable | None = None
    export_value: Callable | None = None
    in_memory: str | None = None
    """The name a transformers 5 model holds it under when that differs from the checkpoint's
    (Mixtral's router: block_sparse_moe.gate on disk, mlp.gate in memory)."""

    def megatron_names(self):
        return (self.megatron,)

    def hf_shapes(self):
        return {self.hf: self.shape}

    def to_megatron(self, name, read):
        value = read(self.hf)
        return self.import_value(value) if self.import_value else value

    def to_hf(self, state):
        value = state[self.megatron]
        return {self.in_memory or self.hf: self.export_value(value) if self.export_value else value}


@dataclass(frozen=True)
class Tied(Mapping):
    """A megatron tensor made from a transformers tensor another mapping already holds (the output
    layer of a model with tied embeddings): checked and exported by that mapping."""
    hf: str
    megatron: str

    def megatron_names(self):
        return (self.megatron,)

    def hf_shapes(self):
        return {}

    def to_megatron(self, name, read):
        return read(self.hf)

    def to_hf(self, state):
        return {}


@dataclass(frozen=True)
class FusedQKV(Mapping):
    """megatron's linear_qkv (weight or bias): per key/value group, that group's query heads, then
    its key head, then its value head, from transformers' separate q, k and v projections."""
    q: str
    k: str
    v: str
    megatron: str
    heads: int
    groups: int
    head_dim: int
    columns: Shape
    """The trailing shape: (hidden,) for a weight, () for a bias."""

    def megatron_names(self):
        return (self.megatron,)

    def hf_shapes(self):
        kv = (self.groups * self.head_dim, *self.columns)
        return {self.q: (self.heads * self.head_dim, *self.columns), self.k: kv, self.v: kv}

    def to_megatron(self, name, read):
        from occi.families import tensors  # loads torch: only when used

        return tensors.fuse_qkv(read(self.q), read(self.k), read(self.v), self.groups, self.head_dim)

    def to_hf(self, state):
        from occi.families import tensors  # loads torch: only when used

        q, k, v = tensors.split_qkv(state[self.megatron], self.heads, self.groups, self.head_dim)
        return {self.q: q, self.k: k, self.v: v}


@dataclass(frozen=True)
class GatedMLP(Mapping):
    """megatron's linear_fc1 of a gated MLP: the gate projection's rows, then the up projection's."""
    gate: str
    up: str
    megatron: str
    shape: Shape
    """The shape of each of gate and up: (ffn, hidden)."""

    def megatron_names(self):
        return (self.megatron,)

    def hf_shapes(self):
        return {self.gate: self.shape, self.up: self.shape}

    def to_megatron(self, name, read):
        from occi.families import tensors  # loads torch: only when used

        return tensors.cat_rows(read(self.gate), read(self.up))

    def to_hf(self, state):
        from occi.families import tensors  # loads torch: only when used

        gate, up = tensors.halves(state[self.megatron])
        return {self.gate: gate, self.up: up}


@dataclass(frozen=True)
class Experts(Mapping):
    """The routed experts of one mixture layer (megatron's SequentialMLP): expert e's linear_fc1 is
    its gate then its up projection, its linear_fc2 its down projection. On disk transformers
    writes one tensor per expert and projection (`gate`, `up`, `down`: the names by expert); in
    memory transformers 5 holds them fused (`fused_gate_up` [E, 2F, H], `fused_down` [E, H, F]),
    which is what an export fills."""
    gate: tuple[str, ...]
    up: tuple[str, ...]
    down: tuple[str, ...]
    megatron_prefix: str
    """`decoder.layers.N.mlp.experts`."""
    fused_gate_up: str
    fused_down: str
    ffn: int
    hidden: int

    def _fc(self, expert: int, which: int) -> str:
        return f"{self.megatron_prefix}.local_experts.{expert}.linear_fc{which}.weight"

    def megatron_names(self):
        return tuple(self._fc(e, which) for e in range(len(self.gate)) for which in (1, 2))

    def hf_shapes(self):
        shapes = {name: (self.ffn, self.hidden) for name in (*self.gate, *self.up)}
        shapes.update({name: (self.hidden, self.ffn) for name in self.down})
        return shapes

    def to_megatron(self, name, read):
        from occi.families import tensors  # loads torch: only when used

        for e in range(len(self.gate)):
            if name == self._fc(e, 1):
                return tensors.cat_rows(read(self.gate[e]), read(self.up[e]))
            if name == self._fc(e, 2):
                return read(self.down[e])
        raise KeyError(name)

    def to_hf(self, state):
        from occi.families import tensors  # loads torch: only when used

        experts = range(len(self.gate))
        return {self.fused_gate_up: tensors.stack([state[self._fc(e, 1)] for e in experts]),
                self.fused_down: tensors.stack([state[self._fc(e, 2)] for e in experts])}
