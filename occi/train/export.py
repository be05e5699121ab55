"""`occi export`: the latest megatron checkpoint -> a transformers LlamaForCausalLM (safetensors).

The checkpoint is loaded into a one-process GPTModel at TP=1, PP=1 (dist_checkpointing
reassembles any TP/PP layout), and its weights are renamed and split into Llama's:
- linear_qkv holds, per key/value group, that group's query heads, then its key, then its value;
- linear_fc1 holds the SwiGLU gate projection, then the up projection;
- the local spec keeps its norms in input_layernorm / pre_mlp_layernorm, the Transformer Engine
  spec fuses them into linear_qkv.layer_norm_weight / linear_fc1.layer_norm_weight: both are read.
The embedding rows added to pad the vocabulary are kept, so token ids need no remapping.
"""
from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from occi.config import RunConfig
from occi.errors import OcciError
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sharding import Share
from occi.fsutil import atomic_dir, mark_done
from occi.train import checkpoints
from occi.train.config import ModelConfig


def megatron_to_llama(state: dict[str, torch.Tensor], model: ModelConfig) -> dict[str, torch.Tensor]:
    """Renames and splits a TP=1 GPTModel state dict into LlamaForCausalLM's."""
    heads, groups, head_dim = model.num_attention_heads, model.num_query_groups, model.head_dim
    per_group = heads // groups
    out = {
        "model.embed_tokens.weight": state["embedding.word_embeddings.weight"],
        "model.norm.weight": state["decoder.final_layernorm.weight"],
        "lm_head.weight": state["output_layer.weight"],
    }
    for layer in range(model.num_layers):
        src, dst = f"decoder.layers.{layer}.", f"model.layers.{layer}."
        qkv = state[src + "self_attention.linear_qkv.weight"].view(groups, (per_group + 2) * head_dim, model.hidden_size)
        q, k, v = torch.split(qkv, [per_group * head_dim, head_dim, head_dim], dim=1)
        out[dst + "self_attn.q_proj.weight"] = q.reshape(heads * head_dim, model.hidden_size)
        out[dst + "self_attn.k_proj.weight"] = k.reshape(groups * head_dim, model.hidden_size)
        out[dst + "self_attn.v_proj.weight"] = v.reshape(groups * head_dim, model.hidden_size)
        out[dst + "self_attn.o_proj.weight"] = state[src + "self_attention.linear_proj.weight"]
        gate, up = torch.chunk(state[src + "mlp.linear_fc1.weight"], 2, dim=0)
        out[dst + "mlp.gate_proj.weight"] = gate
        out[dst + "mlp.up_proj.weight"] = up
        out[dst + "mlp.down_proj.weight"] = state[src + "mlp.linear_fc2.weight"]
        out[dst + "input_layernorm.weight"] = _first(state, src, "input_layernorm.weight", "self_attention.linear_qkv.layer_norm_weight")
        out[dst + "post_attention_layernorm.weight"] = _first(state, src, "pre_mlp_layernorm.weight", "mlp.linear_fc1.layer_norm_weight")
    return {name: tensor.detach().clone().contiguous() for name, tensor in out.items()}


def _first(state: dict, prefix: str, *names: str) -> torch.Tensor:
    for name in names:
        if prefix + name in state:
            return state[prefix + name]
    raise KeyError(f"none of {names} under {prefix}")


def llama_config(model: ModelConfig, vocab_size: int, special: dict[str, int], dtype: torch.dtype):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=model.hidden_size, intermediate_size=model.ffn_hidden_size,
        num_hidden_layers=model.num_layers, num_attention_heads=model.num_attention_heads,
        num_key_value_heads=model.num_query_groups, head_dim=model.head_dim, hidden_act="silu",
        max_position_embeddings=model.seq_length, rms_norm_eps=model.norm_epsilon,
        rope_theta=float(model.rotary_base), attention_bias=False, mlp_bias=False, tie_word_embeddings=False,
        bos_token_id=special["bos"], eos_token_id=special["eos"], pad_token_id=special.get("pad"),
        torch_dtype=dtype,
    )


@contextmanager
def single_process_model(cfg: RunConfig, run_dir: Path, iteration: int | None = None) -> Iterator[tuple]:
    """(GPTModel at TP=1 PP=1 with a checkpoint's weights, its iteration), in this process.

    Sets up a one-rank gloo group when none exists (no launcher needed) and tears it down."""
    import torch.distributed as dist
    from megatron.core import dist_checkpointing, parallel_state

    from occi.train.config import TrainConfig
    from occi.train.model import build_model
    from occi.train.trainer import setup_distributed

    iteration = iteration if iteration is not None else checkpoints.latest_iteration(run_dir)
    if iteration is None:
        raise OcciError(f"{checkpoints.folder(run_dir)}: no checkpoint; run `occi train` first")
    path = checkpoints.checkpoint_dir(run_dir, iteration)
    if not (path / "metadata.json").exists():
        raise OcciError(f"{path}: checkpoint is missing or incomplete (no metadata.json)")
    blend = RunDir.of(run_dir).read_blend()
    single = TrainConfig(global_batch_size=cfg.train.micro_batch_size, micro_batch_size=cfg.train.micro_batch_size,
                         steps=2, warmup_steps=0, precision="fp32")
    created_group = not dist.is_initialized()
    if created_group:  # an in-memory store: a one-process group needs no port
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        setup_distributed(single, cfg.seed)
        model = build_model(cfg.model, single, blend["vocab_size"], torch.float32)
        try:
            loaded = dist_checkpointing.load({"model": model.sharded_state_dict()}, str(path))
            model.load_state_dict(loaded["model"])
        except Exception as err:
            raise OcciError(f"{path}: cannot load checkpoint ({type(err).__name__}: {str(err)[:200]}); "
                            "it is corrupt or was written by another model shape") from None
        model.eval()
        yield model, iteration
    finally:
        parallel_state.destroy_model_parallel()
        if created_group:
            dist.destroy_process_group()


def megatron_logits(cfg: RunConfig, run_dir: Path, tokens: torch.Tensor) -> torch.Tensor:
    """Megatron's logits [batch, sequence, vocab] for `tokens` from the latest checkpoint."""
    length = tokens.shape[1]
    positions = torch.arange(length).expand(tokens.shape[0], -1)
    causal = torch.triu(torch.ones(1, 1, length, length, dtype=torch.bool), diagonal=1)
    with single_process_model(cfg, run_dir) as (model, _), torch.no_grad():
        return model(tokens, positions, causal).float()


def export(cfg: RunConfig, run_dir: Path) -> Path:
    """Writes <run>/hf/: config, safetensors weights, tokenizer files, generation config."""
    from transformers import GenerationConfig, LlamaForCausalLM

    run = RunDir.of(run_dir)
    tokenizer_dir = run.tokenizer
    run.require("tokenizer")
    with single_process_model(cfg, run) as (model, iteration):
        state = {k: v for k, v in model.state_dict().items() if not k.endswith("_extra_state")}
    special = _special_ids(tokenizer_dir)
    vocab_size = state["embedding.word_embeddings.weight"].shape[0]
    hf_model = LlamaForCausalLM(llama_config(cfg.model, vocab_size, special, torch.float32))
    hf_model.load_state_dict(megatron_to_llama(state, cfg.model), strict=True)
    out = run.hf
    with atomic_dir(out) as tmp:
        hf_model.save_pretrained(tmp, safe_serialization=True)
        GenerationConfig(bos_token_id=special["bos"], eos_token_id=special["eos"], pad_token_id=special.get("pad"),
                         max_new_tokens=64).save_pretrained(tmp)
        for item in tokenizer_dir.iterdir():
            if item.is_file() and not item.name.startswith(("_", ".")) and item.suffix != ".png":
                shutil.copy2(item, tmp / item.name)
        (tmp / "occi_export.json").write_text(json.dumps({"iteration": iteration, "source": str(run.checkpoints)}, indent=2))
        mark_done(tmp)
    return out


def run(cfg: RunConfig, run: RunDir, share: Share = Share(), format: str = "hf", quant: str | None = None) -> StageResult:
    """The export stage of the stage list (occi/pipeline.py): the transformers model, or with
    format="gguf" llama.cpp/Ollama files made from it (occi/gguf/)."""
    if format == "gguf":
        from occi.gguf.export import export_gguf

        paths = export_gguf(cfg, run, [quant] if quant else None)
        return StageResult("\n".join(f"export: {path} ({path.stat().st_size / 1e6:,.1f} MB) + "
                                     f"{path.with_suffix('.Modelfile').name}" for path in paths))
    if quant:
        raise OcciError("--quant applies to --format gguf only")
    return StageResult(f"export: transformers model written to {export(cfg, run)}")


def _special_ids(tokenizer_dir: Path) -> dict[str, int]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_dir / "tokenizer.model"))
    ids = {"bos": sp.bos_id(), "eos": sp.eos_id(), "unk": sp.unk_id()}
    if sp.pad_id() >= 0:
        ids["pad"] = sp.pad_id()
    return ids
