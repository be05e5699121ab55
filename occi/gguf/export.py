"""`occi export CONFIG --format gguf --quant TYPE...`: <run>/hf/ -> <run>/gguf/<name>-<type>.gguf.

Each file gets an Ollama Modelfile beside it, and gguf/manifest.json lists every file with its
type and size (the model card reads it). Types gguf-py writes are written from hf/ directly; the
others are made by llama.cpp's quantizer from the f16 file, which is written (and kept) first.
"""
from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

import gguf

from occi.config import RunConfig
from occi.diskspace import free_bytes, full_disk_error, reporting_full_disk
from occi.errors import OcciError
from occi.fsutil import atomic_path, atomic_write_json, plain_permissions
from occi.gguf import quant as quant_module
from occi.gguf.modelfile import write_modelfile
from occi.gguf.quant import QUANT_TYPES, QuantType
from occi.gguf.writer import read_config, weight_files, write_gguf
from occi.machine import cores
from occi.rundir import RunDir


def gguf_dir(run_dir: Path) -> Path:
    return RunDir.of(run_dir).gguf


def file_name(name: str, quant: str) -> str:
    return f"{name}-{quant}.gguf"


def quantize_with_llama_cpp(source: Path, out: Path, quant: QuantType, tool: str) -> None:
    """llama.cpp's quantizer: the llama-quantize tool, or its C function through llama-cpp-python."""
    with atomic_path(out) as tmp, reporting_full_disk(out, tmp):
        if tool == "llama-quantize":
            done = subprocess.run(["llama-quantize", str(source), str(tmp), quant.name.upper(), str(cores())],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
                _raise_if_full(out, tmp, source)
                raise OcciError(f"llama-quantize {quant.name} failed: {last[0]}")
        else:
            import llama_cpp  # optional: llama_cpp is no core dependency

            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = int(quant.file_type)
            params.nthread = cores()
            if llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params)) != 0:
                _raise_if_full(out, tmp, source)
                raise OcciError(f"llama.cpp could not quantize {source.name} to {quant.name} (see its log above)")


def _raise_if_full(out: Path, tmp: Path, source: Path) -> None:
    """llama.cpp's quantizer reports a full disk only in its log: a quantized file is smaller
    than its f16 source, so a failure with less than that free is taken for a full disk."""
    if free_bytes(out.parent) < source.stat().st_size:
        raise full_disk_error(out, None, tmp.stat().st_size if tmp.exists() else 0)


def export_gguf(cfg: RunConfig, run_dir: Path, quants: list[str] | None = None) -> list[Path]:
    """Writes the GGUF files, their Modelfiles and gguf/manifest.json; returns the files."""
    run = RunDir.of(run_dir)
    hf_dir = run.hf
    config = read_config(hf_dir)
    types = quant_module.parse(quants or ["f16"])
    tool = quant_module.require_llama_quantize(types)
    name = cfg.model_name
    metadata = {"languages": list(cfg.languages), "license": cfg.card.license,
                "description": f"{name}: trained with occi (run {cfg.name})"}
    out_dir = run.gguf
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    source_stamp = max(f.stat().st_mtime for f in weight_files(hf_dir))  # the f16 file is redone when hf/ changes
    written = []
    for quant in types:
        path = out_dir / file_name(name, quant.name)
        if quant_module.writes_directly(quant.name):
            write_gguf(hf_dir, path, quant, name, metadata)
        else:
            f16 = out_dir / file_name(name, "f16")
            if not f16.exists() or manifest.get(f16.name, {}).get("source_mtime") != source_stamp:
                write_gguf(hf_dir, f16, QUANT_TYPES["f16"], name, metadata)
                manifest[f16.name] = _entry(f16, "f16", source_stamp)
            quantize_with_llama_cpp(f16, path, quant, tool)
        _readable(path)
        eos = _eos_text(path)
        write_modelfile(path, hf_dir, eos, int(config.get("max_position_embeddings", 2048)))
        manifest[path.name] = _entry(path, quant.name, source_stamp)
        written.append(path)
    manifest = {k: v for k, v in manifest.items() if (out_dir / k).exists()}
    atomic_write_json(manifest_path, manifest)
    return written


def _readable(path: Path) -> None:
    """As a plainly written file would be (the umask's), not the private mode of a temporary file:
    an Ollama or llama.cpp server often runs as another user."""
    plain_permissions(path)


def _entry(path: Path, quant: str, source_stamp: float | None) -> dict:
    return {"quant": quant, "bytes": path.stat().st_size, "source_mtime": source_stamp}


def _eos_text(path: Path) -> str | None:
    reader = gguf.GGUFReader(str(path))
    eos = reader.fields.get("tokenizer.ggml.eos_token_id")
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    if eos is None or tokens is None:
        return None
    return tokens.contents(int(eos.contents()))


def read_manifest(run_dir: Path) -> dict:
    path = RunDir.of(run_dir).gguf_manifest
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
