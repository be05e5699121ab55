"""`occi import`: an open Hugging Face base model -> checkpoints/iter_0000000 at the run's TP/PP.

The base (a hub id fetched with huggingface_hub's snapshot_download, or a local folder) is
checked before anything is written: a registered family (occi/families/), every
shard of the safetensors index present, every tensor the architecture needs present in its shard
with the shape config.json gives it and only finite values (occi/train/hf_weights.py; the values
once, here, before any rank starts), and a vocabulary that holds the tokenizer's ids. Then each of the TP x PP ranks (torchrun; one rank runs
in this process) builds its part of the megatron GPTModel on the meta device (shapes only) and
writes its part of one dist_checkpointing checkpoint tensor by tensor: each tensor is read from
the shards, converted and sliced for the rank only when the writer writes it
(occi/train/streaming_save.py), so memory holds one tensor at a time, never the model. The
checkpoint is written under a temporary name and renamed. Only the model is saved: `occi train` starts the optimizer,
the schedule and the step counter afresh from it (occi/train/checkpoints.py).

<run>/base/ records what was imported: source.json (id, revision, folder, architecture),
config.json (the base's, which decides the model shape of every later stage) and the base's
tokenizer and generation files.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors import safe_open

from occi import config as config_module, families, lifeline
from occi.basemodel import BASE_FILES, is_base_run, read_config, resolve, tokenizer_ids
from occi.config import RunConfig
from occi.errors import OcciError
from occi.families.mapping import Mapping, local_name
from occi.fsutil import atomic_dir, atomic_write_json, atomic_write_text, mark_done
from occi.machine import cores
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sharding import Share
from occi.train import checkpoints, hf_weights, mxfp4, streaming_save
from occi.train.config import ModelConfig
from occi.train.model import build_model
from occi.train.trainer import setup_distributed

IMPORT_MARKER = "occi_import.json"
"""In a checkpoint folder: written by `occi import` (model only, no optimizer state)."""


class Shards:
    """The safetensors tensors of a model folder by name, read one at a time."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        index = self.folder / "model.safetensors.index.json"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (ValueError, KeyError) as err:
                raise OcciError(f"{index}: not a safetensors index ({err})") from None
        elif (self.folder / "model.safetensors").is_file():
            with safe_open(self.folder / "model.safetensors", framework="pt") as handle:
                weight_map = {name: "model.safetensors" for name in handle.keys()}
        else:
            raise OcciError(f"{self.folder}: no model.safetensors or model.safetensors.index.json "
                            "(occi imports safetensors weights only)")
        missing = sorted({f for f in weight_map.values() if not (self.folder / f).is_file()})
        if missing:
            raise OcciError(f"{self.folder}: shard {missing[0]} named in the safetensors index is missing"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        self.weight_map = weight_map

    def files(self) -> list[Path]:
        return [self.folder / f for f in sorted(set(self.weight_map.values()))]

    @contextmanager
    def _open_file(self, name: str):
        """The shard holding `name`, opened for one read: a shard is memory-mapped while open, and
        its pages would otherwise count towards this process's memory until the end."""
        with hf_weights.opened(self.folder / self.weight_map[name]) as handle:
            yield handle

    def read(self, name: str, index: int | None = None) -> torch.Tensor:
        """The tensor `name`, or with index its [index] slice (one expert of a fused experts
        tensor) read alone; a tensor stored as MXFP4 blocks and scales comes dequantized to bf16."""
        if mxfp4.is_packed(name, self.weight_map):
            blocks, scales = (self.read(part, index) for part in mxfp4.packed_names(name))
            return mxfp4.dequantize(blocks, scales)
        with self._open_file(name) as handle:
            return handle.get_tensor(name) if index is None else handle.get_slice(name)[index]

    def stored_shapes(self, expected: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """The expected tensors as this checkpoint stores them: MXFP4 ones as blocks and scales."""
        out: dict[str, tuple[int, ...]] = {}
        for name, shape in expected.items():
            out.update(mxfp4.packed_shapes(name, shape) if mxfp4.is_packed(name, self.weight_map) else {name: shape})
        return out

    def shape(self, name: str) -> list[int]:
        with self._open_file(name) as handle:
            return list(handle.get_slice(name).get_shape())


def check(cfg: RunConfig, folder: Path, run_dir: Path) -> tuple[dict, ModelConfig, Shards]:
    """Everything checkable before writing: architecture, shards, tensors, vocabulary, parallel sizes;
    the model shape has the extended vocabulary of `tokenizer: {extend: ...}`."""
    config = read_config(folder)
    model = families.model_config(config, cfg.model.seq_length, f"{folder / 'config.json'}")
    shards = Shards(folder)
    expected = shards.stored_shapes(families.family_of(config, str(folder)).hf_shapes(model))
    absent = [name for name in expected if name not in shards.weight_map]
    if absent:
        raise OcciError(f"{folder}: tensor {absent[0]} (shape {list(expected[absent[0]])}) is not in the "
                        "safetensors files" + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""))
    rows = shards.shape("model.embed_tokens.weight")
    if rows != [model.vocab_size, model.hidden_size]:
        raise OcciError(f"{folder}: model.embed_tokens.weight has shape {rows}, config.json says "
                        f"[{model.vocab_size}, {model.hidden_size}] (vocab_size, hidden_size)")
    hf_weights.check_layout(folder, shards.weight_map, expected)
    needed = tokenizer_ids(folder)
    model = dataclasses.replace(model, vocab_size=extended_rows(model, extension(cfg, run_dir), cfg.train.tensor_parallel))
    if needed > model.vocab_size:
        raise OcciError(f"{folder}: the tokenizer uses ids up to {needed - 1} but config.json's vocab_size is "
                        f"{model.vocab_size}: the vocabulary does not match the tokenizer")
    if model.num_layers % cfg.train.pipeline_parallel:
        raise OcciError(f"train.pipeline_parallel {cfg.train.pipeline_parallel} does not divide the base's "
                        f"{model.num_layers} layers")
    if model.is_moe and model.num_experts % cfg.train.expert_parallel:
        raise OcciError(f"train.expert_parallel {cfg.train.expert_parallel} does not divide the base's "
                        f"{model.num_experts} experts")
    if cfg.train.data_parallel % cfg.train.expert_parallel:
        raise OcciError(f"train.data_parallel {cfg.train.data_parallel} is not a multiple of train.expert_parallel "
                        f"{cfg.train.expert_parallel}: expert-parallel groups are made of data-parallel ranks")
    widths = [("num_query_groups", model.num_query_groups), ("num_attention_heads", model.num_attention_heads),
              ("ffn_hidden_size", model.ffn_hidden_size), ("vocab_size", model.vocab_size)]
    if model.is_moe:  # the experts' (and shared expert's) widths split over tensor-parallel ranks too
        widths.append(("expert intermediate size", model.expert_ffn_hidden_size))
        if model.moe_shared_expert_ffn_hidden_size:
            widths.append(("shared expert intermediate size", model.moe_shared_expert_ffn_hidden_size))
    for name, value in widths:
        if value % cfg.train.tensor_parallel:
            raise OcciError(f"train.tensor_parallel {cfg.train.tensor_parallel} does not divide the base's "
                            f"{name} ({value})")
    return config, model, shards


def extension(cfg: RunConfig, run_dir: Path) -> dict | None:
    """<run>/tokenizer/extension.json of `tokenizer: {extend: ...}` (None for other policies)."""
    if cfg.tokenizer.source != "extend":
        return None
    path = RunDir.of(run_dir).tokenizer_extension
    if not path.is_file():
        raise OcciError(f"{path}: the extended tokenizer is missing; run `occi tokenizer train` before `occi import`")
    return json.loads(path.read_text(encoding="utf-8"))


def extended_rows(model: ModelConfig, added: dict | None, tensor_parallel: int) -> int:
    """Embedding rows with the new pieces: the base's, or past the highest new id rounded up to 128."""
    if not added or not added["pieces"]:
        return model.vocab_size
    needed = max(p["id"] for p in added["pieces"]) + 1
    multiple = math.lcm(128, tensor_parallel)
    return max(model.vocab_size, -(-needed // multiple) * multiple)


def extend_rows(base: torch.Tensor, added: dict | None, rows: int) -> torch.Tensor:
    """The base's embedding (or output) rows, then a row per new piece: the mean of the rows of the
    base pieces it is made of; other new rows (padding): the mean of all base rows."""
    if rows == base.shape[0] and not (added and added["pieces"]):
        return base
    out = torch.empty(rows, base.shape[1], dtype=base.dtype)
    out[: base.shape[0]] = base
    out[base.shape[0]:] = base.float().mean(0).to(base.dtype)
    for piece in added["pieces"] if added else []:
        out[piece["id"]] = base[piece["parts"]].float().mean(0).to(base.dtype)
    return out


def run(cfg: RunConfig, run: RunDir, share: Share = Share()) -> StageResult:
    """The import stage of the stage list (occi/pipeline.py)."""
    return StageResult(import_base(cfg, RunDir.of(run)))


def import_base(cfg: RunConfig, run: RunDir) -> str:
    """Imports the base (unless done); returns a one-line summary."""
    run_dir = run.root
    out = run.base
    if run.is_done("import"):
        return f"base already imported: {out}"
    if not is_base_run(cfg):
        raise OcciError(f"{cfg.source_file}: model: names no base; write model: {{base: HF_ID_OR_FOLDER}}")
    folder = resolve(cfg.model)
    config, model, shards = check(cfg, folder, run_dir)
    family = families.family_of(config, str(folder))
    world = cfg.train.tensor_parallel * cfg.train.pipeline_parallel
    in_process = world == 1 and "RANK" not in os.environ
    with ThreadPoolExecutor(max_workers=1) as pool:
        # the check reads mapped pages and reduces them in torch without the GIL, so the rank
        # this process runs can import megatron on the other core meanwhile
        checked = pool.submit(hf_weights.check_values, folder, shards.weight_map,
                              list(shards.stored_shapes(family.hf_shapes(model))))
        if in_process:
            import megatron.core  # noqa: F401  loads megatron: the rank below needs it, imported during the check
        checked.result()
    final = checkpoints.checkpoint_dir(run_dir, 0)
    if checkpoints.latest_iteration(run_dir):
        raise OcciError(f"{checkpoints.folder(run_dir)}: training checkpoints exist; import into a fresh run directory")
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if in_process:
            dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
            try:
                write_rank(cfg, folder, tmp, run_dir)
            finally:
                _teardown()
        else:
            _torchrun(cfg, run, folder, tmp, world)
        info = {"base": cfg.model.base, "revision": cfg.model.revision, "folder": str(folder),
                "architecture": family.hf_class,
                "tensor_parallel": cfg.train.tensor_parallel, "pipeline_parallel": cfg.train.pipeline_parallel}
        atomic_write_json(tmp / IMPORT_MARKER, info)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    checkpoints.publish_latest(run_dir, 0)
    with atomic_dir(out) as base_tmp:
        for name in BASE_FILES:
            if (folder / name).is_file():
                shutil.copy2(folder / name, base_tmp / name)
        if model.vocab_size != config["vocab_size"]:  # an extended tokenizer: the embedding grew
            atomic_write_json(base_tmp / "config.json", {**config, "vocab_size": model.vocab_size})
            info["base_vocab_size"] = config["vocab_size"]
        atomic_write_json(base_tmp / "source.json", {**info, "shards": [p.name for p in shards.files()],
                                                    "parameters": model.parameters(model.vocab_size)})
        mark_done(base_tmp)
    packed = sum(mxfp4.is_packed(name, shards.weight_map) for name in family.hf_shapes(model))
    return (f"imported {info['architecture']} {cfg.model.base} ({model.parameters(model.vocab_size):,} parameters, "
            f"{model.num_layers} layers) at TP={cfg.train.tensor_parallel} PP={cfg.train.pipeline_parallel} -> {final}"
            + (f"; {packed} MXFP4 tensors dequantized to bf16, one expert at a time" if packed else ""))


def _teardown() -> None:
    from megatron.core import parallel_state  # loads megatron: only when used

    parallel_state.destroy_model_parallel()
    dist.destroy_process_group()


def _torchrun(cfg: RunConfig, run: RunDir, folder: Path, tmp: Path, world: int) -> None:
    error_file = tmp / "error.txt"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}",
               "-m", "occi.train.hf_import", str(run.config_file), str(folder), str(tmp), str(run.root)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, cores() // world)))}
    code = subprocess.run(command, env=env, preexec_fn=lifeline.child_setup()).returncode  # dies with us
    if error_file.exists():
        raise OcciError(error_file.read_text(encoding="utf-8").strip())
    if code != 0:
        raise OcciError(f"import failed (exit code {code}); the log above says why")


def import_dtype(cfg: RunConfig, config: dict) -> torch.dtype:
    """bf16 or fp32 as train.precision says; auto: the base's own dtype (fp32 unless bf16)."""
    if cfg.train.precision != "auto":
        return torch.bfloat16 if cfg.train.precision == "bf16" else torch.float32
    stored = config.get("dtype") or config.get("torch_dtype")
    return torch.bfloat16 if stored == "bfloat16" else torch.float32


def write_rank(cfg: RunConfig, folder: Path, out: Path, run_dir: Path) -> None:
    """This rank's part of the checkpoint (every rank of a TP x PP group calls it).

    The model is built on the meta device (shapes and megatron's sharding, no memory), and each
    tensor of its sharded state dict is made from the base's tensors only when the checkpoint
    writer writes it (occi/train/streaming_save.py)."""
    config, model_cfg, shards = check(cfg, folder, run_dir)
    added = extension(cfg, run_dir)
    dtype = import_dtype(cfg, config)
    # experts are written whole (EP=1); dist_checkpointing splits them for any expert-parallel size
    train = dataclasses.replace(cfg.train, data_parallel=1, expert_parallel=1, global_batch_size=cfg.train.micro_batch_size,
                                precision="bf16" if dtype == torch.bfloat16 else "fp32")
    setup_distributed(train, cfg.seed, model_cfg)
    with torch.device("meta"):
        model = build_model(model_cfg, train, model_cfg.vocab_size, dtype)
    made = _TensorMaker(families.family_of(config, str(folder)).mappings(model_cfg), model_cfg, shards, added)
    streaming_save.save({"model": model.sharded_state_dict()}, out, made.part)


class _TensorMaker:
    """Makes the megatron tensors of the base (full, TP=1 layout) by name from the family's mappings,
    keeping the last one: the writer asks for the parts of a tensor (its tensor-parallel slices,
    SwiGLU's gate and up halves) one after another.

    A sharded key names a tensor of every layer (dense models: the global layer is a leading axis
    of the key's tensor) or of one layer (`decoder.layers.3.…`, models with experts); an expert's
    key names every expert of its layer, the expert being a leading axis."""

    def __init__(self, mappings: list[Mapping], model: ModelConfig, shards: Shards, added: dict | None):
        self.by_name = {name: mapping for mapping in mappings for name in mapping.megatron_names()}
        self.model, self.shards, self.added = model, shards, added
        self.last: tuple[str, torch.Tensor] | None = None

    def part(self, key: str, offsets: tuple[int, ...], sizes: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        name, axis = local_name(key), 0
        if name.startswith("decoder.layers."):
            rest = name[len("decoder.layers."):]
            if not rest.split(".", 1)[0].isdigit():
                rest, axis = f"{offsets[axis]}.{rest}", axis + 1
            if ".mlp.experts.experts." in rest:
                rest = rest.replace(".mlp.experts.experts.", f".mlp.experts.local_experts.{offsets[axis]}.")
            name = "decoder.layers." + rest
        return streaming_save.part(self.full(name), offsets, sizes, dtype)

    def full(self, name: str) -> torch.Tensor:
        if self.last is None or self.last[0] != name:
            self.last = None  # free the previous tensor before making the next
            self.last = (name, self._make(name))
        return self.last[1]

    def _make(self, name: str) -> torch.Tensor:
        if name not in self.by_name:
            raise KeyError(f"no transformers tensor makes megatron's {name}")
        tensor = self.by_name[name].to_megatron(name, self.shards.read)
        if name in ("embedding.word_embeddings.weight", "output_layer.weight"):
            return extend_rows(tensor, self.added, self.model.vocab_size)
        return tensor


def main(config_path: str, folder: str, out: str, run_dir: str) -> int:
    """Entry point of one torchrun rank."""
    lifeline.die_with_parent()  # a torchrun rank ends with torchrun
    # A failed rank leaves without the final barrier: its peers may be waiting in another
    # collective, and torchrun stops them once one rank exits non-zero.
    try:
        write_rank(config_module.load(config_path), Path(folder), Path(out), Path(run_dir))
        if dist.is_initialized():
            dist.barrier()
    except OcciError as err:
        atomic_write_text(Path(out) / "error.txt", str(err) + "\n")  # whichever rank found it
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
