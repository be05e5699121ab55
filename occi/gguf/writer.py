"""One GGUF file from an HF model folder (safetensors weights, config, tokenizer), with gguf-py.

Tensors are read from safetensors one at a time and written in two passes (the header with every
tensor's name, shape and type, then the data), so memory holds one tensor, not the model.
Norms and biases (1-D, or 2-D per-expert biases) stay f32, as llama.cpp expects; a 2-D weight whose rows are not a
whole number of the type's blocks (32 values for q8_0) is written f16 instead. The experts of a
mixture layer are stacked into one tensor per role (occi/gguf/experts.py), a tensor llama.cpp holds
as several is split by its family (GgufSpec.split), and tensors llama.cpp
needs that transformers computes (the `llama3` RoPE factors, occi/gguf/rope.py) are added.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gguf
import numpy as np
from safetensors import safe_open

from occi.diskspace import reporting_full_disk
from occi.errors import OcciError
from occi.fsutil import atomic_path
from occi.gguf import arch as arch_module
from occi.gguf import rope as rope_module
from occi.gguf.experts import stack_experts
from occi.gguf.quant import QuantType
from occi.gguf.vocab import add_vocab, read_vocab

Q = gguf.GGMLQuantizationType
SKIPPED = ("rotary_emb.inv_freq",)


@dataclass(frozen=True, eq=False)
class Planned:
    hf_name: str
    """The transformers name gguf-py maps (for stacked experts: the name without the expert number)."""
    gguf_name: str
    shape: tuple[int, ...]
    qtype: Q
    sources: tuple[tuple[Path, str], ...]
    """(file, transformers name) of each tensor read: one, or every expert's in expert order."""
    computed: np.ndarray | None = None
    """The value of a tensor made here rather than read (sources empty)."""
    stacked: bool = False
    """The sources are experts stacked into one tensor (expert 0 first)."""
    take: Callable[[np.ndarray], np.ndarray] | None = None
    """The part of the read tensor this one is (a family's GgufSpec.split); None: all of it."""


def read_config(hf_dir: Path) -> dict:
    path = Path(hf_dir) / "config.json"
    if not path.exists():
        raise OcciError(f"{hf_dir}: no exported model (config.json); run `occi export CONFIG` first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise OcciError(f"{path}: not valid JSON ({err})") from None


def weight_files(hf_dir: Path) -> list[Path]:
    hf_dir = Path(hf_dir)
    index = hf_dir / "model.safetensors.index.json"
    if index.exists():
        names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        files = [hf_dir / name for name in names]
    else:
        files = sorted(hf_dir.glob("*.safetensors"))
    missing = [f.name for f in files if not f.exists()]
    if not files or missing:
        raise OcciError(f"{hf_dir}: no safetensors weights{' (missing ' + ', '.join(missing) + ')' if missing else ''}; "
                        "run `occi export CONFIG` first")
    return files


def _tensor_type(name: str, shape: tuple[int, ...], wanted: Q) -> Q:
    if len(shape) < 2 or name.endswith(".bias"):  # per-expert biases are 2-D
        return Q.F32
    if wanted in (Q.F32, Q.F16, Q.BF16):
        return wanted
    block, _ = gguf.GGML_QUANT_SIZES[wanted]
    return wanted if shape[-1] % block == 0 else Q.F16


def _nbytes(shape: tuple[int, ...], qtype: Q) -> int:
    if qtype == Q.F32:
        return 4 * math.prod(shape)
    if qtype in (Q.F16, Q.BF16):
        return 2 * math.prod(shape)
    return math.prod(gguf.quant_shape_to_byte_shape(shape, qtype))


def plan(hf_dir: Path, config: dict, quant: QuantType) -> list[Planned]:
    shape = arch_module.shape_of(config, str(hf_dir))
    spec = arch_module.spec_of(config, str(hf_dir / "config.json"))
    names = gguf.get_tensor_name_map(arch_module.gguf_arch(spec), shape.layers)
    found: dict[str, tuple[Path, tuple[int, ...]]] = {}
    for file in weight_files(hf_dir):
        try:
            with safe_open(str(file), framework="pt") as handle:
                for hf_name in handle.keys():
                    if hf_name.endswith(SKIPPED) or (shape.tied and hf_name == "lm_head.weight"):
                        continue
                    dims = tuple(handle.get_slice(hf_name).get_shape())
                    if spec.scalar_hparams and math.prod(dims) == 1:  # a hyper-parameter (scalar_tensors)
                        continue
                    found[hf_name] = (file, dims)
        except Exception as err:  # safetensors raises its own error types for a broken file
            raise OcciError(f"{file}: cannot read the weights ({type(err).__name__}: {str(err)[:200]})") from None
    planned = []
    for hf_name, sources in stack_experts(list(found), str(hf_dir)):
        file, dims = found[sources[0]]
        stacked = len(sources) > 1 or hf_name != sources[0]
        if stacked:
            dims = (len(sources), *dims)
        read_from = tuple((found[s][0], s) for s in sources)
        parts = (spec.split(hf_name, dims, config) if spec.split else None) or [(hf_name, dims, None)]
        for part_name, part_dims, take in parts:
            part_dims = tuple(part_dims)
            planned.append(Planned(part_name, arch_module.tensor_name(names, spec, part_name, str(file)), part_dims,
                                   _tensor_type(part_name, part_dims, quant.tensor_type), read_from,
                                   stacked=stacked, take=take))
    embedding = next((p for p in planned if p.gguf_name == "token_embd.weight"), None)
    if embedding is None:
        raise OcciError(f"{hf_dir}: the weights have no token embedding")
    scaling = rope_module.check(config, arch_module.gguf_arch(spec), str(hf_dir / "config.json"))
    if scaling.get("rope_type") == "llama3":
        factors = rope_module.llama3_frequency_factors(scaling, shape.head_dim, shape.rope_theta)
        planned.append(Planned("rope_freqs.weight", gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight",
                               factors.shape, Q.F32, (), factors))
    return planned


def scalar_tensors(hf_dir: Path) -> dict[str, float]:
    """Every tensor of one value in the weights, by name (a family's GgufSpec.scalar_hparams)."""
    found = {}
    for file in weight_files(hf_dir):
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                if math.prod(handle.get_slice(name).get_shape()) == 1:
                    found[name] = handle.get_tensor(name).float().item()
    return found


def _convert(data: np.ndarray, qtype: Q) -> np.ndarray:
    if qtype == Q.F32:
        return data.astype(np.float32)
    if qtype == Q.F16:
        return data.astype(np.float16)
    return gguf.quants.quantize(data, qtype)


def add_generation_defaults(writer: gguf.GGUFWriter, hf_dir: Path) -> dict:
    """general.sampling.* from generation_config.json: greedy (temp 0) unless it samples."""
    path = Path(hf_dir) / "generation_config.json"
    if not path.exists():
        return {}
    settings = json.loads(path.read_text(encoding="utf-8"))
    written = {}
    if settings.get("do_sample"):
        for key, add in (("temperature", writer.add_sampling_temp), ("top_k", writer.add_sampling_top_k),
                         ("top_p", writer.add_sampling_top_p), ("min_p", writer.add_sampling_min_p)):
            if isinstance(settings.get(key), (int, float)):
                add(settings[key])
                written[key] = settings[key]
    else:
        writer.add_sampling_temp(0.0)
        written["temperature"] = 0.0
    if isinstance(settings.get("repetition_penalty"), (int, float)):
        writer.add_sampling_penalty_repeat(float(settings["repetition_penalty"]))
        written["repetition_penalty"] = settings["repetition_penalty"]
    return written


def write_gguf(hf_dir: Path, out: Path, quant: QuantType, name: str, metadata: dict | None = None) -> Path:
    """Writes `out` (atomically) from the model in `hf_dir`, its 2-D weights as `quant`.

    `metadata`: optional general.* values (languages, license, description)."""
    hf_dir, out = Path(hf_dir), Path(out)
    config = read_config(hf_dir)
    spec = arch_module.spec_of(config, str(hf_dir / "config.json"))
    shape = arch_module.shape_of(config, str(hf_dir / "config.json"))
    planned = plan(hf_dir, config, quant)
    embedding_rows = next(p.shape[0] for p in planned if p.gguf_name == "token_embd.weight")
    vocab = read_vocab(hf_dir, embedding_rows)
    metadata = metadata or {}
    needed = sum(_nbytes(item.shape, item.qtype) for item in planned)
    with atomic_path(out) as tmp, reporting_full_disk(out, tmp, needed):
        writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[arch_module.gguf_arch(spec)])
        writer.add_name(name)
        writer.add_quantized_by("occi")
        if metadata.get("languages"):
            writer.add_languages(list(metadata["languages"]))
        if metadata.get("license"):
            writer.add_license(metadata["license"])
        if metadata.get("description"):
            writer.add_description(metadata["description"])
        writer.add_file_type(quant.file_type)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        arch_module.add_hparams(writer, shape, spec, config, str(hf_dir / "config.json"))
        rope_module.add_scaling_hparams(writer, rope_module.scaling_of(config), config)
        if spec.scalar_hparams:
            spec.scalar_hparams(writer, scalar_tensors(hf_dir))
        add_vocab(writer, vocab)
        add_generation_defaults(writer, hf_dir)
        for item in planned:
            writer.add_tensor_info(item.gguf_name, item.shape, np.dtype(np.float32), _nbytes(item.shape, item.qtype),
                                   raw_dtype=item.qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        handles: dict[Path, object] = {}

        def read(file: Path, name: str) -> np.ndarray:
            if file not in handles:
                handles[file] = safe_open(str(file), framework="pt")
            return handles[file].get_tensor(name).float().numpy()

        try:
            for item in planned:
                if item.computed is not None:
                    tensor = item.computed
                elif not item.stacked:
                    tensor = read(*item.sources[0])
                else:
                    tensor = np.stack([read(file, name) for file, name in item.sources])
                if item.take is not None:
                    tensor = item.take(tensor)
                tensor = arch_module.prepare(spec, shape, config, item.hf_name, tensor)
                writer.write_tensor_data(_convert(tensor, item.qtype))
        finally:
            writer.close()
            handles.clear()
    return out
