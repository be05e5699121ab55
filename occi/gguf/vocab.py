"""The tokenizer of an HF model folder -> GGUF's tokenizer keys (tokenizer.ggml.*).

Two kinds, the ones occi's exports carry:
- SentencePiece (`tokenizer.model`, occi's own and Llama-2/Mistral-style bases, extended ones
  included: `tokenizer: {extend: ...}` writes the new pieces into it): pieces, scores and piece
  types straight from the model file (SentencePiece's type numbers are GGUF's), GGUF model
  `llama`; the leading-space rule from its normalizer; BOS as tokenizer_config.json or else the
  tokenizer.json beside it says.
- byte-level BPE in `tokenizer.json` (Llama-3/Qwen/Tekken-style bases): tokens, merges, GGUF model
  `gpt2`. llama.cpp knows pre-tokenizers by name, so the split pattern is recognised here and
  named (llama-bpe, qwen2, gpt-2, tekken); another pattern is refused rather than tokenized differently.
Rows beyond the tokenizer (the embedding is padded) get `[PAD<id>]` pieces of type UNUSED.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from occi.errors import OcciError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# split patterns of byte-level BPE pre-tokenizers, by llama.cpp's name for them
PRE_TOKENIZERS = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+": "gpt-2",
    # Mistral's Tekken (Mistral-Nemo, Apertus), as transformers converts tekken.json
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+": "tekken",
}


@dataclass
class Vocab:
    model: str
    """tokenizer.ggml.model: llama (SentencePiece) or gpt2 (byte-level BPE)."""
    tokens: list[str]
    """One piece per embedding row."""
    types: list[int]
    """GGUF token type per piece (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte)."""
    scores: list[float] | None = None
    """SentencePiece scores (merge priority); None for BPE."""
    merges: list[str] | None = None
    """BPE merges as 'left right'; None for SentencePiece."""
    pre: str | None = None
    """tokenizer.ggml.pre: llama.cpp's name of the pre-tokenizer (BPE only)."""
    special: dict[str, int] = field(default_factory=dict)
    """bos, eos, unk, pad -> token id, those the tokenizer has."""
    add_bos: bool = False
    """The tokenizer puts the BOS token in front of a text."""
    add_eos: bool = False
    """The tokenizer appends the EOS token to a text."""
    add_space_prefix: bool | None = None
    """SentencePiece adds '▁' before the text (its add_dummy_prefix)."""
    remove_extra_whitespaces: bool | None = None
    """SentencePiece collapses runs of spaces."""
    chat_template: str | None = None
    """The Jinja chat template, when the tokenizer has one."""


def json_or_empty(path: Path) -> dict:
    """A JSON file of a model folder, or {} when the folder has no such file."""
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except ValueError as err:
        raise OcciError(f"{path}: not valid JSON ({err})") from None


def _token_text(value) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def chat_template(hf_dir: Path, tokenizer_config: dict) -> str | None:
    """The default chat template: chat_template.jinja (transformers 5) or tokenizer_config's."""
    jinja = hf_dir / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text(encoding="utf-8")
    template = tokenizer_config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    return template if isinstance(template, str) and template.strip() else None


def _specials(hf_dir: Path, tokenizer_config: dict, ids: dict[str, int], config: dict) -> dict[str, int]:
    special_map = json_or_empty(hf_dir / "special_tokens_map.json")
    found = {}
    for role in ("bos", "eos", "unk", "pad"):
        text = _token_text(tokenizer_config.get(f"{role}_token")) or _token_text(special_map.get(f"{role}_token"))
        if text is not None and text in ids:
            found[role] = ids[text]
        elif isinstance(config.get(f"{role}_token_id"), int):
            found[role] = config[f"{role}_token_id"]
    return found


def _pad(tokens: list[str | None], types: list[int], scores: list[float] | None, size: int, where: str) -> None:
    if len(tokens) > size:
        raise OcciError(f"{where}: the tokenizer has {len(tokens)} tokens but the embedding only {size} rows")
    for index in range(len(tokens), size):
        tokens.append(None)
        types.append(UNUSED)
        if scores is not None:
            scores.append(-1000.0)
    for index, token in enumerate(tokens):
        if token is None:
            tokens[index] = f"[PAD{index}]"
            types[index] = UNUSED


def read_vocab(hf_dir: Path, vocab_size: int) -> Vocab:
    """The tokenizer of `hf_dir`, padded to `vocab_size` rows."""
    hf_dir = Path(hf_dir)
    tokenizer_config = json_or_empty(hf_dir / "tokenizer_config.json")
    config = json_or_empty(hf_dir / "config.json")
    if (hf_dir / "tokenizer.model").exists():
        vocab = _sentencepiece(hf_dir, vocab_size, tokenizer_config, config)
    elif (hf_dir / "tokenizer.json").exists():
        vocab = _bpe(hf_dir, vocab_size, tokenizer_config, config)
    else:
        raise OcciError(f"{hf_dir}: no tokenizer (tokenizer.model or tokenizer.json)")
    vocab.chat_template = chat_template(hf_dir, tokenizer_config)
    if isinstance(tokenizer_config.get("add_eos_token"), bool):
        vocab.add_eos = tokenizer_config["add_eos_token"]
    return vocab


def _sentencepiece(hf_dir: Path, vocab_size: int, tokenizer_config: dict, config: dict) -> Vocab:
    from sentencepiece import sentencepiece_model_pb2  # loads sentencepiece: only when used

    path = hf_dir / "tokenizer.model"
    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception as err:  # protobuf's DecodeError
        raise OcciError(f"{path}: not a SentencePiece model ({type(err).__name__})") from None
    if not proto.pieces:
        raise OcciError(f"{path}: not a SentencePiece model (no pieces)")
    tokens: list[str | None] = [p.piece for p in proto.pieces]
    types = [int(p.type) for p in proto.pieces]
    scores = [float(p.score) for p in proto.pieces]
    # tokens transformers added on top of the SentencePiece model (chat markers, say)
    for key, entry in (tokenizer_config.get("added_tokens_decoder") or {}).items():
        index = int(key)
        if index >= len(tokens):
            tokens.extend([None] * (index + 1 - len(tokens)))
            types.extend([UNUSED] * (index + 1 - len(types)))
            scores.extend([-1000.0] * (index + 1 - len(scores)))
            tokens[index] = entry["content"]
            types[index] = CONTROL if entry.get("special") else USER_DEFINED
    _pad(tokens, types, scores, vocab_size, str(path))
    ids = {token: index for index, token in enumerate(tokens)}
    trainer = proto.trainer_spec
    special = {role: index for role, index in (("unk", trainer.unk_id), ("bos", trainer.bos_id),
                                                 ("eos", trainer.eos_id), ("pad", trainer.pad_id)) if index >= 0}
    special.update(_specials(hf_dir, tokenizer_config, ids, config))
    add_bos = tokenizer_config.get("add_bos_token")
    if not isinstance(add_bos, bool):  # transformers 5 leaves it to tokenizer.json's post-processor
        add_bos = _adds_bos(json_or_empty(hf_dir / "tokenizer.json")) if (hf_dir / "tokenizer.json").exists() else True
    return Vocab(model="llama", tokens=tokens, types=types, scores=scores, special=special, add_bos=add_bos,
                 add_space_prefix=proto.normalizer_spec.add_dummy_prefix,
                 remove_extra_whitespaces=proto.normalizer_spec.remove_extra_whitespaces)


def _split_patterns(pre: dict | None) -> tuple[list[str], bool]:
    """(regex patterns of Split steps, whether a ByteLevel step splits with GPT-2's own regex)."""
    if not pre:
        return [], False
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    patterns, byte_level_regex = [], False
    for step in steps:
        if step.get("type") == "Split":
            pattern = step.get("pattern", {})
            patterns.append(pattern.get("Regex") or pattern.get("String") or "")
        elif step.get("type") == "ByteLevel" and step.get("use_regex", True):
            byte_level_regex = True
    return patterns, byte_level_regex


def pre_tokenizer_name(tokenizer: dict, where: str) -> str:
    patterns, byte_level_regex = _split_patterns(tokenizer.get("pre_tokenizer"))
    if len(patterns) == 1 and patterns[0] in PRE_TOKENIZERS and not byte_level_regex:
        return PRE_TOKENIZERS[patterns[0]]
    if not patterns and byte_level_regex:
        return "gpt-2"
    raise OcciError(f"{where}: pre-tokenizer {patterns or tokenizer.get('pre_tokenizer')} is not one llama.cpp "
                    f"knows by name; occi writes {', '.join(sorted(set(PRE_TOKENIZERS.values())))}")


def _adds_bos(tokenizer: dict) -> bool:
    post = tokenizer.get("post_processor") or {}
    steps = post.get("processors", [post]) if post.get("type") == "Sequence" else [post]
    for step in steps:
        if step.get("type") == "TemplateProcessing":
            single = step.get("single") or []
            return bool(single) and "SpecialToken" in single[0]
    return False


def _bpe(hf_dir: Path, vocab_size: int, tokenizer_config: dict, config: dict) -> Vocab:
    path = hf_dir / "tokenizer.json"
    tokenizer = json_or_empty(path)
    model = tokenizer.get("model") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise OcciError(f"{path}: model type {model.get('type')!r} without tokenizer.model; occi writes "
                        "SentencePiece (tokenizer.model) or byte-level BPE (tokenizer.json) to GGUF")
    if model.get("byte_fallback"):
        raise OcciError(f"{path}: a SentencePiece-style BPE (byte_fallback) needs its tokenizer.model")
    pre = pre_tokenizer_name(tokenizer, str(path))
    size = max([*model["vocab"].values(), *(t["id"] for t in tokenizer.get("added_tokens", []))], default=-1) + 1
    tokens: list[str | None] = [None] * size
    types = [NORMAL] * size
    for token, index in model["vocab"].items():
        tokens[index] = token
    for added in tokenizer.get("added_tokens", []):
        tokens[added["id"]] = added["content"]
        types[added["id"]] = CONTROL if added.get("special") else USER_DEFINED
    _pad(tokens, types, None, vocab_size, str(path))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    ids = {token: index for index, token in enumerate(tokens)}
    add_bos = tokenizer_config.get("add_bos_token")
    return Vocab(model="gpt2", tokens=tokens, types=types, merges=merges, pre=pre,
                 special=_specials(hf_dir, tokenizer_config, ids, config),
                 add_bos=add_bos if isinstance(add_bos, bool) else _adds_bos(tokenizer))


def add_vocab(writer, vocab: Vocab) -> None:
    """Writes the tokenizer keys."""
    writer.add_tokenizer_model(vocab.model)
    if vocab.pre:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    if vocab.merges is not None:
        writer.add_token_merges(vocab.merges)
    adders = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id, "unk": writer.add_unk_token_id,
              "pad": writer.add_pad_token_id}
    for role, index in vocab.special.items():
        adders[role](index)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    if vocab.add_space_prefix is not None:
        writer.add_add_space_prefix(vocab.add_space_prefix)
    if vocab.remove_extra_whitespaces is not None:
        writer.add_remove_extra_whitespaces(vocab.remove_extra_whitespaces)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)
