"""`occi export`: the latest megatron checkpoint -> a transformers model (safetensors): LlamaForCausalLM,
or the family of the imported base, or for a recipe with experts the family that holds its shape
(occi/families/).

The checkpoint is loaded into a one-process GPTModel at TP=1, PP=1 (dist_checkpointing
reassembles any TP/PP layout), and its weights are renamed and split as the family's tensor
mappings say (occi/families/mapping.py; the Transformer Engine spec's fused norm names are read too).
The embedding rows added to pad the vocabulary are kept, so token ids need no remapping.
config.json also carries a top-level rope_theta (and rope_scaling), which transformers 4 reads;
only the files a model repository needs are copied from the tokenizer folder, and a tokenizer
class only transformers 5 knows is written as PreTrainedTokenizerFast, which both load.
"""
from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
import torch.distributed as dist

from occi import families
from occi.basemodel import TOKENIZER_FILES, is_base_run, run_model_config, vocab_size as run_vocab_size
from occi.config import RunConfig
from occi.diskspace import reporting_full_disk
from occi.errors import OcciError
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sft.config import SFTConfig
from occi.sharding import Share
from occi.fsutil import atomic_dir, mark_done
from occi.families.mapping import local_name
from occi.tokenizer.train import MODEL_INPUT_NAMES
from occi.train import checkpoints
from occi.train.config import ModelConfig, TrainConfig
from occi.train.model import build_model
from occi.train.trainer import setup_distributed


@contextmanager
def single_process_model(cfg: RunConfig, run_dir: Path, iteration: int | None = None,
                         root: Path | None = None) -> Iterator[tuple]:
    """(GPTModel at TP=1 PP=1 with a checkpoint's weights, its iteration), in this process; the
    checkpoint is the latest (or `iteration`) in `root`, by default the run's checkpoints/.

    Sets up a one-rank gloo group when none exists (no launcher needed) and tears it down."""
    from megatron.core import dist_checkpointing, parallel_state  # loads megatron: only when used

    iteration = iteration if iteration is not None else checkpoints.latest_iteration(run_dir, root)
    if iteration is None:
        raise OcciError(f"{root or checkpoints.folder(run_dir)}: no checkpoint; run `occi train` first")
    path = checkpoints.checkpoint_dir(run_dir, iteration, root)
    if not (path / "metadata.json").exists():
        raise OcciError(f"{path}: checkpoint is missing or incomplete (no metadata.json)")
    model_cfg = run_model_config(cfg, run_dir)
    vocab_size = run_vocab_size(model_cfg, run_dir)
    single = TrainConfig(global_batch_size=cfg.train.micro_batch_size, micro_batch_size=cfg.train.micro_batch_size,
                         steps=2, warmup_steps=0, precision="fp32")
    created_group = not dist.is_initialized()
    if created_group:  # an in-memory store: a one-process group needs no port
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        setup_distributed(single, cfg.seed, model_cfg)
        model = build_model(model_cfg, single, vocab_size, torch.float32)
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


def megatron_logits(cfg: RunConfig, run_dir: Path, tokens: torch.Tensor, root: Path | None = None) -> torch.Tensor:
    """Megatron's logits [batch, sequence, vocab] for `tokens` from the latest checkpoint (of
    `root`, by default the run's checkpoints/)."""
    length = tokens.shape[1]
    positions = torch.arange(length).expand(tokens.shape[0], -1)
    causal = torch.triu(torch.ones(1, 1, length, length, dtype=torch.bool), diagonal=1)
    with single_process_model(cfg, run_dir, root=root) as (model, _), torch.no_grad():
        return model(tokens, positions, causal).float()


def export(cfg: RunConfig, run_dir: Path, stage: str | None = None, iteration: int | None = None,
           out: Path | None = None) -> Path:
    """Writes <run>/hf/ (or `out`): config, safetensors weights, tokenizer files, generation
    config. A run with DPO (else SFT) checkpoints exports the newest of them, with the tokenizer DPO
    (SFT) trained with (its chat template included); `stage` (train, sft or dpo) and `iteration`
    pick another checkpoint (`occi merge` exports the run's stage models and checkpoints so)."""
    from transformers import GenerationConfig  # loads transformers: only when used

    run = RunDir.of(run_dir)
    run_dir = run.root
    if stage is None:
        stage = "dpo" if checkpoints.latest_iteration(run_dir, run.dpo_checkpoints) is not None else \
            "sft" if checkpoints.latest_iteration(run_dir, run.sft_checkpoints) is not None else "train"
    tuned, chat = stage == "dpo", stage in ("sft", "dpo")
    root = {"dpo": run.dpo_checkpoints, "sft": run.sft_checkpoints, "train": run.checkpoints}[stage]
    tokenizer_dir = run.dpo_tokenizer if tuned else run.sft_tokenizer if chat else run_tokenizer_dir(cfg, run)
    model_cfg = run_model_config(cfg, run_dir)
    base = json.loads((run.base / "config.json").read_text(encoding="utf-8")) if is_base_run(cfg) else None
    with single_process_model(cfg, run_dir, iteration, root=root) as (model, iteration):
        state = {k: v for k, v in model.state_dict().items() if not k.endswith("_extra_state")}
    special = _special_ids(tokenizer_dir)
    vocab_size = state["embedding.word_embeddings.weight"].shape[0]
    family = families.family(base["model_type"], str(run.base / "config.json")) if base else \
        families.recipe_family(model_cfg)
    hf_model = model_class(family)(hf_config(family, model_cfg, base, vocab_size, special, torch.float32))
    weights = megatron_to_hf(family, state, model_cfg)
    for name, param in hf_model.state_dict().items():
        if name.endswith(family.export_zeros) and name not in weights:
            weights[name] = torch.zeros_like(param)
    if model_cfg.tied_embeddings:
        weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
    hf_model.load_state_dict(weights, strict=True)
    out = out or run.hf
    needed = sum({t.data_ptr(): t.numel() * t.element_size() for t in hf_model.state_dict().values()}.values())
    with atomic_dir(out) as tmp, reporting_full_disk(out, tmp, needed):
        hf_model.save_pretrained(tmp, safe_serialization=True)
        _top_level_rope(tmp / "config.json")
        if base is not None and (run.base / "generation_config.json").is_file():
            shutil.copy2(run.base / "generation_config.json", tmp / "generation_config.json")
        else:
            GenerationConfig(bos_token_id=special["bos"], eos_token_id=special["eos"], pad_token_id=special.get("pad"),
                             max_new_tokens=_max_new_tokens(cfg, chat)).save_pretrained(tmp)
        for name in TOKENIZER_FILES:
            if (tokenizer_dir / name).is_file():
                shutil.copy2(tokenizer_dir / name, tmp / name)
        _portable_tokenizer_config(tmp / "tokenizer_config.json")
        (tmp / "occi_export.json").write_text(json.dumps({"iteration": iteration, "source": str(root), "sft": chat,
                                                          "dpo": tuned, "stage": stage},
                                                         indent=2))
        mark_done(tmp)
    return out


def megatron_to_hf(family: families.Family, state: dict[str, torch.Tensor], model: ModelConfig) -> dict[str, torch.Tensor]:
    """A full (TP=1, PP=1) GPTModel state dict -> transformers tensors, as the family's mappings say."""
    state = {local_name(name): tensor for name, tensor in state.items()}
    out = {}
    for mapping in family.mappings(model):
        out.update(mapping.to_hf(state))
    return {name: tensor.detach().clone().contiguous() for name, tensor in out.items()}


def hf_config(family: families.Family, model: ModelConfig, base: dict | None, vocab_size: int,
              special: dict[str, int | None], dtype: torch.dtype):
    """The transformers config of an export: the base's (its config.json with the run's vocabulary
    size) or, without a base, the family's export values with the tokenizer's special ids."""
    import transformers  # loads transformers: only when used

    if base is None:
        values = {**family.export_values(model), "bos_token_id": special.get("bos"),
                  "eos_token_id": special.get("eos"), "pad_token_id": special.get("pad")}
    else:
        values = {k: v for k, v in base.items() if not k.startswith("_") and k not in
                  ("architectures", "model_type", "transformers_version", "torch_dtype", "dtype",
                   "quantization_config")}  # an MXFP4 base (gpt-oss) is imported dequantized, exported unquantized
    values["vocab_size"] = vocab_size
    config = transformers.CONFIG_MAPPING[family.model_type](**values)
    config.architectures = [family.hf_class]
    config.dtype = dtype
    return config


def model_class(family: families.Family):
    import transformers  # loads transformers: only when used

    return getattr(transformers, family.hf_class)
def _max_new_tokens(cfg: RunConfig, chat: bool) -> int:
    """generation_config.json's default answer length: SFT's setting for a chat model."""
    if not chat:
        return 64

    return cfg.sft.max_new_tokens if cfg.sft else SFTConfig.max_new_tokens


def run(cfg: RunConfig, run: RunDir, share: Share = Share(), format: str = "hf", quant: str | None = None) -> StageResult:
    """The export stage of the stage list (occi/pipeline.py): the transformers model, or with
    format="gguf" llama.cpp/Ollama files made from it (occi/gguf/)."""
    if format == "gguf":
        from occi.gguf.export import export_gguf  # loads gguf: only when used

        paths = export_gguf(cfg, run, [quant] if quant else None)
        return StageResult("\n".join(f"export: {path} ({path.stat().st_size / 1e6:,.1f} MB) + "
                                     f"{path.with_suffix('.Modelfile').name}" for path in paths))
    if quant:
        raise OcciError("--quant applies to --format gguf only")
    return StageResult(f"export: transformers model written to {export(cfg, run)}")


def run_tokenizer_dir(cfg: RunConfig, run: RunDir) -> Path:
    """The run's tokenizer; for a base run not yet past the tokenizer stage, the base's own."""
    for folder in (run.tokenizer, run.base) if is_base_run(cfg) else (run.tokenizer,):
        if (folder / "tokenizer.model").is_file() or (folder / "tokenizer.json").is_file():
            return folder
    run.require("tokenizer")
    raise OcciError(f"{run.tokenizer}: no tokenizer files; run `occi tokenizer train` again")


def _top_level_rope(path: Path) -> None:
    """transformers 5 keeps the RoPE base in rope_parameters; transformers 4 reads rope_theta (and
    rope_scaling, and Gemma 3's rope_local_base_freq) at the top level: write both."""
    config = json.loads(path.read_text(encoding="utf-8"))
    params = config.get("rope_parameters") or {}
    if "full_attention" in params:  # per layer type (Gemma 3): transformers 4 names the local base apart
        if "rope_theta" in (params.get("sliding_attention") or {}):
            config["rope_local_base_freq"] = params["sliding_attention"]["rope_theta"]
        params = params["full_attention"] or {}
    if "rope_theta" in params:
        config["rope_theta"] = params["rope_theta"]
    if params.get("rope_type", "default") != "default":
        config["rope_scaling"] = {k: v for k, v in params.items() if k != "rope_theta"}
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _portable_tokenizer_config(path: Path) -> None:
    """"TokenizersBackend" (what transformers 5 writes) is unknown to transformers 4;
    PreTrainedTokenizerFast loads the same tokenizer.json in both with the same ids. Its
    transformers 4 version also returns token_type_ids unless told the model's input names, and
    `model.generate(**tokenizer(text))` then fails: no exported model takes them. transformers 5
    lists extra special tokens (a SentencePiece base's, say) as `extra_special_tokens: [...]`,
    which transformers 4 reads as a mapping and fails on; both read `additional_special_tokens`."""
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") in (None, "TokenizersBackend"):
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    if isinstance(config.get("extra_special_tokens"), list):
        extra = config.pop("extra_special_tokens")
        listed = config.get("additional_special_tokens") or []
        config["additional_special_tokens"] = listed + [token for token in extra if token not in listed]
    config.setdefault("model_input_names", list(MODEL_INPUT_NAMES))
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _special_ids(tokenizer_dir: Path) -> dict[str, int | None]:
    if (tokenizer_dir / "tokenizer.json").is_file():
        from transformers import AutoTokenizer  # loads transformers: only when used

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        return {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id,
                "unk": tokenizer.unk_token_id}
    import sentencepiece as spm  # loads sentencepiece: only when used

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_dir / "tokenizer.model"))
    ids = {"bos": sp.bos_id(), "eos": sp.eos_id(), "unk": sp.unk_id()}
    if sp.pad_id() >= 0:
        ids["pad"] = sp.pad_id()
    return ids
