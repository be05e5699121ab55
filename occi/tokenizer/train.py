"""`occi tokenizer train`: sample the run's corpora, train SentencePiece, write HF files and a report.

<run>/tokenizer/ gets tokenizer.model and tokenizer.vocab (SentencePiece), tokenizer.json,
tokenizer_config.json and special_tokens_map.json (transformers, loadable offline with
AutoTokenizer and giving the same ids), sampling.json (the language shares actually drawn),
and the report on the run's held-out text (report.json, report.md, fertility.png). Everything is
built in a temporary folder that replaces tokenizer/ only when complete.
"""
from __future__ import annotations

import json
from pathlib import Path

from tokenizers import normalizers

from occi.config import RunConfig
from occi.fsutil import atomic_dir, atomic_write_json, mark_done
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sharding import Share
from occi.tokenizer import report as tokenizer_report
from occi.tokenizer.models import SentencePieceTokenizer
from occi.tokenizer.base import keep
from occi.tokenizer.extend import extend
from occi.tokenizer.sampling import corpus_lines, sample_lines, write_training_text
from occi.tokenizer.spm_train import SPECIALS, train_sentencepiece

MODEL_INPUT_NAMES = ("input_ids", "attention_mask")
"""What the tokenizer returns: occi's models take no token_type_ids (transformers 4's generic fast
tokenizer returns them unless told so, and `model.generate(**inputs)` then fails)."""


def train(cfg: RunConfig, run: RunDir) -> dict:
    """Trains the run's tokenizer (unless done) and returns its report."""
    out = run.tokenizer
    if run.is_done("tokenizer"):
        return json.loads(run.tokenizer_report.read_text(encoding="utf-8"))
    if cfg.tokenizer.source == "base":
        return keep(cfg, run)
    if cfg.tokenizer.source == "extend":
        return extend(cfg, run)
    recipe = cfg.tokenizer
    training_lines = corpus_lines(cfg, run, "train")
    chosen, shares = sample_lines(training_lines, recipe.alpha, recipe.char_budget, cfg.seed)
    with atomic_dir(out) as tmp:
        text_file = tmp / ".training-text.txt"
        line_count = write_training_text(chosen, text_file, cfg.seed)
        train_sentencepiece(cfg, text_file, tmp / "tokenizer", line_count)
        text_file.unlink()
        _write_hf_files(tmp)
        atomic_write_json(tmp / "sampling.json", {"alpha": recipe.alpha, "char_budget": recipe.char_budget,
                                                   "languages": shares})
        heldout = {code: "\n".join(lines) for code, lines in corpus_lines(cfg, run, "heldout").items() if lines}
        result = tokenizer_report.evaluate([SentencePieceTokenizer(tmp / "tokenizer.model", f"occi-{cfg.name}")],
                                           heldout, parallel=False)
        tokenizer_report.write(result, tmp)
        mark_done(tmp)
    return result


def _write_hf_files(folder: Path) -> None:
    """tokenizer.json, tokenizer_config.json and special_tokens_map.json beside tokenizer.model.

    transformers converts the SentencePiece model; its Llama tokenizer class then rebuilds the
    pre-tokenizer on load in a way that drops a leading space, so the files name the generic fast
    tokenizer and carry SentencePiece's own rule (prefix one "▁", every space becomes "▁")."""
    from transformers import LlamaTokenizerFast, PreTrainedTokenizerFast  # loads transformers: only when used

    converted = LlamaTokenizerFast.from_pretrained(str(folder))._tokenizer
    converted.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    converted.pre_tokenizer = None
    hf = PreTrainedTokenizerFast(tokenizer_object=converted, unk_token=SPECIALS["unk"], bos_token=SPECIALS["bos"],
                                 eos_token=SPECIALS["eos"], pad_token=SPECIALS["pad"], clean_up_tokenization_spaces=False)
    hf.save_pretrained(str(folder))
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    # occi's data separates documents with </s> and adds no <s> (like Megatron-LM's --append-eod),
    # so the model is used without a BOS token too
    config.update({"add_bos_token": False, "add_eos_token": False, "model_max_length": 1_000_000,
                   "model_input_names": list(MODEL_INPUT_NAMES),
                   # transformers 5 writes "TokenizersBackend", which transformers 4 cannot load
                   "tokenizer_class": "PreTrainedTokenizerFast"})
    atomic_write_json(config_file, config)
    atomic_write_json(folder / "special_tokens_map.json", {role + "_token": piece for role, piece in SPECIALS.items()})


def run(cfg: RunConfig, run: RunDir, share: Share = Share()) -> StageResult:
    """The tokenizer stage of the stage list (occi/pipeline.py)."""
    result = train(cfg, run)
    name = next(iter(result["tokenizers"]))
    entry = result["tokenizers"][name]
    return StageResult(f"tokenizer {name}: vocabulary {entry['vocab_size']:,}; held-out text:\n"
                       f"{tokenizer_report.markdown(result)}\ntokenizer: {run.tokenizer}")

