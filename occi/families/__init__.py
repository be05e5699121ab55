"""The model-family registry: one module per Hugging Face model type, `occi/families/<model_type>.py`,
each defining `FAMILY = Family(...)`. Import, export, GGUF, the card and the tests read the registry;
none of them names a family. Adding a family: docs/families.md.

Importing this package or a family module does not import torch (nor transformers or gguf): the
tensor work is in the mapping kinds' methods, which import occi/families/tensors.py when called.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache
from typing import Callable

from occi.errors import OcciError
from occi.families.mapping import Mapping
from occi.train.config import ModelConfig

HELPERS = frozenset({"common", "experts", "mapping", "tensors"})
"""Modules of this package that are shared helpers, not families."""


@dataclass(frozen=True)
class GgufSpec:
    """How llama.cpp runs a family."""
    arch: str
    """The member of gguf-py's `gguf.MODEL_ARCH` (e.g. "LLAMA"); a name, so that the registry needs no gguf."""
    interleave_rope: bool
    """Reorder each head's q/k rows from transformers' half-split rotary layout to the adjacent pairs
    llama.cpp rotates (its `llama` graph); False where llama.cpp rotates halves too (Qwen)."""
    hparams: Callable | None = None
    """`hparams(writer, config, where)`: adds the architecture's hyper-parameters beyond the
    Llama-like ones occi/gguf writes for every family (None: none); a one-line OcciError naming
    the config.json key for what llama.cpp's graph would compute otherwise."""
    tensor_name: Callable | None = None
    """`tensor_name(hf_name) -> gguf name or None`: names gguf-py's get_tensor_name_map lacks."""
    prepare: Callable | None = None
    """`prepare(hf_name, array, config) -> array`: a value change llama.cpp needs beyond the q/k interleave."""
    scalar_hparams: Callable | None = None
    """`scalar_hparams(writer, scalars)`: hyper-parameters llama.cpp reads that the checkpoint holds as
    tensors of one value (Apertus' per-layer xIELU scalars); `scalars` maps each such tensor's
    transformers name to its value, and they are not written as tensors. None: every tensor is a tensor."""
    split: Callable | None = None
    """`split(hf_name, shape, config) -> [(part_name, part_shape, take)] or None`: a checkpoint tensor
    llama.cpp holds as other tensors (gpt-oss' fused gate_up_proj, DeepSeek's kv_b_proj); each part is
    named and prepared as `part_name`, its value `take(array)`. None, or a None answer: the tensor as it is."""
    shape: Callable | None = None
    """`shape(config) -> {field: value}`: Shape fields (occi/gguf/arch.py) the architecture means
    otherwise than the Llama-like reading of config.json (latent attention's one key/value head and
    its head lengths). None: as read."""


@dataclass(frozen=True)
class Family:
    """One transformers decoder architecture as occi imports, exports and converts it."""
    model_type: str
    """config.json's model_type; also the name of the family's module."""
    hf_class: str
    """The transformers class an export names in config.json's architectures."""
    model_fields: Callable[[dict, str], dict]
    """`model_fields(config, where)`: ModelConfig's keyword arguments (all but seq_length and
    description) from a base's config.json; one-line OcciErrors for what cannot be expressed."""
    layer_mappings: Callable[["ModelConfig", int], list[Mapping]]
    """`layer_mappings(model, layer)`: the tensors of one decoder layer (occi/families/mapping.py)."""
    global_mappings: Callable[["ModelConfig"], list[Mapping]]
    """`global_mappings(model)`: the embedding, final norm and output layer."""
    gguf: GgufSpec | str
    """How llama.cpp runs the family, or the one-line reason occi does not write it as GGUF."""
    export_values: Callable[["ModelConfig"], dict] | None = None
    """`export_values(model)`: config.json values of a recipe exported as this family without a base
    (None: the family is only exported from an imported base of its own)."""
    exports_recipe: Callable[["ModelConfig"], str | None] | None = None
    """`exports_recipe(model)`: None if this family holds a recipe's shape exactly, else why not in a
    few words (read only where export_values is set)."""
    export_zeros: tuple[str, ...] = ()
    """Suffixes of transformers parameters the class always has and a recipe may lack, exported as
    zeros (Qwen2-MoE's q/k/v biases)."""
    experts: bool = False
    """Whether the family's layers hold routed experts (expert parallelism applies)."""

    def mappings(self, model: "ModelConfig") -> list[Mapping]:
        """Every mapping of a model of this family: the global tensors, then layer by layer."""
        out = list(self.global_mappings(model))
        for layer in range(model.num_layers):
            out.extend(self.layer_mappings(model, layer))
        return out

    def hf_shapes(self, model: "ModelConfig") -> dict[str, tuple[int, ...]]:
        """Every transformers tensor a base of this shape holds on disk, with config.json's shape."""
        shapes: dict[str, tuple[int, ...]] = {}
        for mapping in self.mappings(model):
            shapes.update(mapping.hf_shapes())
        return shapes


@cache
def families() -> dict[str, Family]:
    """model_type -> Family, for every family module of this package."""
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in HELPERS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        family_ = getattr(module, "FAMILY", None)
        if not isinstance(family_, Family) or family_.model_type != info.name:
            raise RuntimeError(f"occi/families/{info.name}.py must define FAMILY = Family(model_type={info.name!r}, ...)")
        found[info.name] = family_
    return found


def supported() -> str:
    """The transformers classes of the registered families, for a refusal."""
    return ", ".join(f.hf_class for f in families().values())


def family(model_type: str, where: str) -> Family:
    """The family of a model_type, or a one-line OcciError listing the supported ones."""
    known = families()
    if model_type not in known:
        raise OcciError(f"{where}: model_type {model_type!r} is not supported; supported: {supported()}")
    return known[model_type]


def family_of(config: dict, where: str) -> Family:
    """The family of a config.json, or a one-line OcciError naming its architecture and the supported ones."""
    kind = config.get("model_type")
    if kind not in families():
        named = ", ".join(config.get("architectures") or []) or kind
        raise OcciError(f"{where}: architecture {named!r} (model_type {kind!r}) is not supported; "
                        f"supported: {supported()}")
    return families()[kind]


def model_config(config: dict, seq_length: int | None, where: str) -> "ModelConfig":
    """The megatron shape of a base's config.json; seq_length None: the base's context, at most 4096 tokens."""
    family_ = family_of(config, where)
    try:
        fields = family_.model_fields(config, where)
        context = int(config.get("max_position_embeddings") or 4096)
        return ModelConfig(**fields, seq_length=seq_length or min(context, 4096),
                           description=f"imported {family_.hf_class}", make_vocab_size_divisible_by=1)
    except KeyError as err:
        raise OcciError(f"{where}: config.json lacks {err.args[0]!r}") from None
    except ValueError as err:
        raise OcciError(f"{where}: {err}") from None


def recipe_family(model: "ModelConfig") -> Family:
    """The family a recipe (no base) exports to: the one whose exports_recipe holds its shape."""
    reasons = []
    for family_ in families().values():
        if family_.export_values is None:
            continue
        why = family_.exports_recipe(model) if family_.exports_recipe else None
        if why is None:
            return family_
        reasons.append(f"{family_.hf_class}: {why}")
    raise OcciError("model: no transformers architecture holds this shape exactly (" + "; ".join(reasons) + ")")


CAPABILITIES = ("import", "export", "TP", "PP", "EP", "keep/extend tokenizer", "GGUF", "llama.cpp equal")
"""The columns of docs/families.md's family x capability table."""
NO_EXPERTS = "no experts to split"


def capabilities(family_: Family) -> dict[str, str]:
    """A family's row of the capability table: "Y" or the one-line reason it does not apply."""
    gguf = "Y" if isinstance(family_.gguf, GgufSpec) else family_.gguf
    return {"import": "Y", "export": "Y", "TP": "Y", "PP": "Y", "EP": "Y" if family_.experts else NO_EXPERTS,
            "keep/extend tokenizer": "Y", "GGUF": gguf, "llama.cpp equal": gguf}


def capability_table() -> str:
    """docs/families.md's table (Markdown), from the registry."""
    lines = ["| family | class | " + " | ".join(CAPABILITIES) + " |", "|" + "---|" * (len(CAPABILITIES) + 2)]
    for name, family_ in families().items():
        row = capabilities(family_)
        lines.append(f"| `{name}` | {family_.hf_class} | " + " | ".join(row[c] for c in CAPABILITIES) + " |")
    return "\n".join(lines)
