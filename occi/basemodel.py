"""A base model's shape, read without torch: resolve the base (a local folder or huggingface_hub's
snapshot of a hub id), read and check its config.json (occi/families), the number of ids its
tokenizer uses, and the run's vocabulary size and padded embedding rows. The tokenizer, eval and
card stages read these from here; the import itself is occi/train/hf_import.py. The embedding
rows a vocabulary is padded to: occi/train/config.py padded_vocab_size (shape arithmetic, which
occi/train/parallel.py checks layouts with).
"""
from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer

from occi import families
from occi.errors import OcciError
from occi.rundir import RunDir
from occi.train.config import BaseModelConfig

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja")
"""The files of a model repository that make up its tokenizer."""
BASE_FILES = ("config.json", "generation_config.json") + TOKENIZER_FILES


def is_base_run(cfg) -> bool:
    """Whether the run continues from a base model (`model: {base: ...}`)."""
    return isinstance(cfg.model, BaseModelConfig)


def resolve(base) -> Path:
    """The local folder of the base (a BaseModelConfig): the folder itself, or huggingface_hub's
    snapshot of a hub id."""
    folder = Path(base.base)
    if folder.is_dir():
        return folder.resolve()
    try:
        from huggingface_hub import snapshot_download  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it

        return Path(snapshot_download(repo_id=base.base, revision=base.revision,
                                      allow_patterns=["*.json", "*.safetensors", "tokenizer.model", "*.txt", "*.jinja"]))
    except Exception as err:  # huggingface_hub raises many kinds (network, auth, unknown repo)
        message = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise OcciError(f"model.base {base.base!r}: not a folder, and the hub snapshot failed "
                        f"({type(err).__name__}: {message})") from None


def read_config(folder: Path) -> dict:
    """config.json of a base model folder, checked to be of a registered family."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OcciError(f"{path}: no such file; a base model folder needs config.json and *.safetensors") from None
    except (OSError, ValueError) as err:
        raise OcciError(f"{path}: cannot read: {err}") from None
    families.family_of(config, str(path))
    return config


def tokenizer_ids(folder: Path) -> int:
    """The number of ids a tokenizer folder uses (its highest id + 1): tokenizer.json's, else
    tokenizer.model's pieces."""
    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
        return max(raw.get_vocab(with_added_tokens=True).values()) + 1
    if (folder / "tokenizer.model").is_file():
        import sentencepiece as spm  # loads sentencepiece: only when used

        return spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model")).get_piece_size()
    raise OcciError(f"{folder}: no tokenizer.json or tokenizer.model")


def run_model_config(cfg, run_dir):
    """The run's model shape: the recipe's, or the imported base's (from <run>/base/config.json)."""
    if not is_base_run(cfg):
        return cfg.model
    path = RunDir.of(run_dir).base / "config.json"
    if not path.is_file():
        raise OcciError(f"{path}: the base model is not imported; run `occi import` first")
    return families.model_config(json.loads(path.read_text(encoding="utf-8")), cfg.model.seq_length, str(path))


def vocab_size(model, run_dir) -> int:
    """The vocabulary the model is built for: an imported base's rows, else the prepared data's tokenizer
    (blend.json's vocab_size, read as it is: a copied run's report folder holds blend.json alone)."""
    if model.vocab_size is not None:
        return model.vocab_size
    run = RunDir.of(run_dir)
    blend = run.read_json(run.blend_file)
    if blend is None:
        run.require("data")  # the one "run `occi data prepare` first" line
        raise OcciError(f"{run.blend_file}: missing or not JSON; run `occi data prepare` again")
    return blend["vocab_size"]
