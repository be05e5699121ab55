"""Quantization types by the names llama.cpp uses (f16, q8_0, q4_k_m, ...), and who writes each.

gguf-py (the `gguf` package) quantizes some block formats itself (`gguf.quants`); those are
written directly, row by row. The others (k-quants, i-quants and the mixes such as q4_k_m, which
pick a type per tensor) only exist in llama.cpp's C code: they are made from the f16 file with
`llama-quantize` when it is on PATH, else with the same C function through llama-cpp-python.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import lru_cache

import gguf
import numpy as np

from occi.errors import OcciError

Q = gguf.GGMLQuantizationType
F = gguf.LlamaFileType


@dataclass(frozen=True)
class QuantType:
    name: str
    """The name on the command line and in file names (llama-quantize's, lower case)."""
    file_type: F
    """general.file_type written into the file."""
    tensor_type: Q | None
    """The type of the 2-D weights when gguf-py writes the file directly; None: llama.cpp makes it."""


def _table() -> dict[str, QuantType]:
    direct = {"f32": (F.ALL_F32, Q.F32), "f16": (F.MOSTLY_F16, Q.F16), "bf16": (F.MOSTLY_BF16, Q.BF16),
              "q8_0": (F.MOSTLY_Q8_0, Q.Q8_0), "q5_1": (F.MOSTLY_Q5_1, Q.Q5_1), "q5_0": (F.MOSTLY_Q5_0, Q.Q5_0),
              "q4_1": (F.MOSTLY_Q4_1, Q.Q4_1), "q4_0": (F.MOSTLY_Q4_0, Q.Q4_0)}
    table = {name: QuantType(name, ftype, qtype) for name, (ftype, qtype) in direct.items()}
    for ftype in F:
        if ftype.name.startswith("MOSTLY_") and ftype not in (F.MOSTLY_MXFP4_MOE,):
            name = ftype.name.removeprefix("MOSTLY_").lower()
            table.setdefault(name, QuantType(name, ftype, None))
    return table


QUANT_TYPES = _table()


@lru_cache(maxsize=None)
def writes_directly(name: str) -> bool:
    """True when gguf-py itself can write this type (checked on one block, not assumed)."""
    quant = QUANT_TYPES[name]
    if quant.tensor_type is None:
        return False
    if quant.tensor_type in (Q.F32, Q.F16):
        return True
    try:
        gguf.quants.quantize(np.zeros((1, 256), dtype=np.float32), quant.tensor_type)
        return True
    except NotImplementedError:
        return False


def parse(names: list[str]) -> list[QuantType]:
    """--quant values (repeatable, or comma-separated) -> types, in the order given."""
    wanted = [n.strip().lower() for value in names for n in value.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in QUANT_TYPES]
    if unknown:
        raise OcciError(f"--quant: unknown type {unknown[0]!r}; expected one of {', '.join(QUANT_TYPES)}")
    return [QUANT_TYPES[n] for n in dict.fromkeys(wanted)]


def direct_names() -> list[str]:
    return [name for name in QUANT_TYPES if writes_directly(name)]


def llama_quantize() -> str | None:
    """How llama.cpp's quantizer can be reached here: 'llama-quantize' (the tool on PATH),
    'llama-cpp-python' (the same C function in the installed bindings), or None."""
    if shutil.which("llama-quantize"):
        return "llama-quantize"
    try:
        import llama_cpp  # noqa: F401  optional: llama_cpp may be missing (the except names the fix)
    except ImportError:
        return None
    return "llama-cpp-python"


def require_llama_quantize(types: list[QuantType]) -> str:
    needing = [q.name for q in types if not writes_directly(q.name)]
    tool = llama_quantize()
    if needing and tool is None:
        raise OcciError(f"--quant {','.join(needing)}: these types are made by llama.cpp's quantizer: put "
                        "`llama-quantize` on PATH or install llama-cpp-python; written without it: "
                        + ", ".join(direct_names()))
    return tool or ""
