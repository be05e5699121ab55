"""`occi tokenizer train`: sample the run's corpora, train SentencePiece, write HF files and a report.

<run>/tokenizer/ gets tokenizer.model and tokenizer.vocab (SentencePiece), tokenizer.json,
tokenizer_config.json and special_tokens_map.json (transformers, loadable offline with
AutoTokenizer and giving the same ids), sampling.json (the language shares actually drawn),
and the report on the run's held-out text (report.json, report.md, fertility.png). Everything is
built in a temporary folder that replaces tokenizer/ only when complete.
"""
from __future__ import annotations

from pathlib import Path

from occi.config import RunConfig
from occi.corpora.reader import read_texts
from occi.errors import OcciError
from occi.fsutil import atomic_dir, atomic_write_json, mark_done
from occi.machine import cores
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sharding import Share
from occi.tokenizer import report as tokenizer_report
from occi.tokenizer.models import SentencePieceTokenizer
from occi.tokenizer.sampling import sample_lines, write_training_text

SPECIALS = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}
MODEL_INPUT_NAMES = ("input_ids", "attention_mask")
"""What the tokenizer returns: occi's models take no token_type_ids (transformers 4's generic fast
tokenizer returns them unless told so, and `model.generate(**inputs)` then fails)."""


def _lines(cfg: RunConfig, run: RunDir, split: str) -> dict[str, list[str]]:
    lines = {}
    for code in cfg.languages:
        texts = read_texts(run, code, split, cfg.heldout)
        lines[code] = [line.strip() for _, text in texts for line in text.splitlines() if line.strip()]
    return lines


def train(cfg: RunConfig, run: RunDir) -> dict:
    """Trains the run's tokenizer (unless done) and returns its report."""
    import json

    out = run.tokenizer
    if run.is_done("tokenizer"):
        return json.loads(run.tokenizer_report.read_text(encoding="utf-8"))
    if cfg.tokenizer.source == "base":
        from occi.tokenizer.base import keep

        return keep(cfg, run)
    if cfg.tokenizer.source == "extend":
        from occi.tokenizer.extend import extend

        return extend(cfg, run)
    recipe = cfg.tokenizer
    training_lines = _lines(cfg, run, "train")
    chosen, shares = sample_lines(training_lines, recipe.alpha, recipe.char_budget, cfg.seed)
    with atomic_dir(out) as tmp:
        text_file = tmp / ".training-text.txt"
        line_count = write_training_text(chosen, text_file, cfg.seed)
        _train_sentencepiece(cfg, text_file, tmp / "tokenizer", line_count)
        text_file.unlink()
        _write_hf_files(tmp)
        atomic_write_json(tmp / "sampling.json", {"alpha": recipe.alpha, "char_budget": recipe.char_budget,
                                                   "languages": shares})
        heldout = {code: "\n".join(lines) for code, lines in _lines(cfg, run, "heldout").items() if lines}
        result = tokenizer_report.evaluate([SentencePieceTokenizer(tmp / "tokenizer.model", f"occi-{cfg.name}")],
                                           heldout, parallel=False)
        tokenizer_report.write(result, tmp)
        mark_done(tmp)
    return result


def _train_sentencepiece(cfg: RunConfig, text_file: Path, prefix: Path, line_count: int) -> None:
    import sentencepiece as spm

    recipe = cfg.tokenizer
    user_symbols = list(recipe.special_tokens) + [f"<reserved_{i}>" for i in range(recipe.reserved_tokens)]
    try:
        spm.SentencePieceTrainer.train(
            input=str(text_file), model_prefix=str(prefix), vocab_size=recipe.vocab_size,
            model_type=recipe.model_type, character_coverage=recipe.character_coverage,
            byte_fallback=recipe.byte_fallback, split_digits=recipe.split_digits,
            unk_id=0, bos_id=1, eos_id=2, pad_id=3, unk_piece=SPECIALS["unk"], bos_piece=SPECIALS["bos"],
            eos_piece=SPECIALS["eos"], pad_piece=SPECIALS["pad"], user_defined_symbols=user_symbols,
            input_sentence_size=recipe.input_sentence_size if line_count > recipe.input_sentence_size else 0,
            shuffle_input_sentence=True,
            max_sentence_length=recipe.max_sentence_length, hard_vocab_limit=recipe.hard_vocab_limit,
            # keep text exactly: decode(encode(x)) == x for NFC text, whitespace runs included
            normalization_rule_name="identity", remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
            num_threads=recipe.threads or cores(), minloglevel=2,
        )
    except RuntimeError as err:
        message = str(err).strip().splitlines()[-1] if str(err).strip() else "training failed"
        if "Vocabulary size is smaller than required_chars" in message or "vocab_size" in message:
            raise OcciError(f"tokenizer: vocab_size {recipe.vocab_size} is too small for this text ({message}); "
                            "raise vocab_size or lower character_coverage") from None
        raise OcciError(f"tokenizer: SentencePiece failed: {message}") from None


def _write_hf_files(folder: Path) -> None:
    """tokenizer.json, tokenizer_config.json and special_tokens_map.json beside tokenizer.model.

    transformers converts the SentencePiece model; its Llama tokenizer class then rebuilds the
    pre-tokenizer on load in a way that drops a leading space, so the files name the generic fast
    tokenizer and carry SentencePiece's own rule (prefix one "▁", every space becomes "▁")."""
    import json

    from tokenizers import normalizers
    from transformers import LlamaTokenizerFast, PreTrainedTokenizerFast

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

