"""Training a SentencePiece model on a text file with a tokenizer recipe's settings, shared by a
tokenizer trained from scratch (occi/tokenizer/train.py) and one extending a base (extend.py)."""
from __future__ import annotations

from pathlib import Path

from occi.errors import OcciError
from occi.machine import cores

SPECIALS = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}
"""The special pieces of occi's tokenizers, ids 0-3 in this order."""


def train_sentencepiece(cfg, text_file: Path, prefix: Path, line_count: int) -> None:
    """Trains `prefix`.model and `prefix`.vocab from `text_file` (`line_count` lines) with the run's recipe."""
    import sentencepiece as spm  # loads sentencepiece: only when used

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
