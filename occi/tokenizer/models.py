"""Tokenizers behind one small interface, so occi's own and the references are measured alike.

- occi's (or any) SentencePiece model: a tokenizer folder or a .model file;
- Hugging Face `tokenizer.json` files (byte-level BPE and others);
- the references shipped in the mistral-common wheel, loadable offline: `mistral-32k`
  (the SentencePiece model of Mistral-7B and occiglot-7b-eu5) and `tekken-131k` (Mistral NeMo).
"""
from __future__ import annotations

import re
from pathlib import Path

from tokenizers import Tokenizer as Raw

from occi.errors import OcciError

_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
REFERENCES = {"mistral-32k": "tokenizer.model.v1", "tekken-131k": "tekken_240911.json"}


class Tokenizer:
    name: str
    vocab_size: int
    _bytes: frozenset[int] = frozenset()
    """Ids of the byte-fallback tokens (<0x00> ... <0xFF>), if the tokenizer has them."""

    def encode(self, texts: list[str]) -> list[list[int]]:
        raise NotImplementedError

    def is_byte_fallback(self, token_id: int) -> bool:
        """True for tokens that stand for one raw UTF-8 byte of a character the vocabulary lacks."""
        return token_id in self._bytes

    @property
    def has_byte_fallback(self) -> bool:
        return bool(self._bytes)


class SentencePieceTokenizer(Tokenizer):
    def __init__(self, path: Path, name: str):
        import sentencepiece as spm  # loads sentencepiece: only when used

        self.name = name
        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        self.vocab_size = self.sp.get_piece_size()
        self._bytes = frozenset(i for i in range(self.vocab_size) if self.sp.is_byte(i))

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.sp.encode(texts, out_type=int)


class HFTokenizer(Tokenizer):
    def __init__(self, path: Path, name: str):
        self.name = name
        self.raw = Raw.from_file(str(path))
        self.vocab_size = self.raw.get_vocab_size()
        vocab = self.raw.get_vocab()
        self._bytes = frozenset(i for piece, i in vocab.items() if _BYTE_PIECE.match(piece))

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.raw.encode_batch(texts, add_special_tokens=False)]


class TekkenTokenizer(Tokenizer):
    """Byte-level BPE: every byte is in the vocabulary, so there is no byte fallback to count."""

    def __init__(self, path: Path, name: str):
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer  # loads mistral_common: only when used

        self.name = name
        self.tekken = Tekkenizer.from_file(path)
        self.vocab_size = self.tekken.n_words

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [self.tekken.encode(text, bos=False, eos=False) for text in texts]


def load(spec: str) -> Tokenizer:
    """A tokenizer from a reference name, a tokenizer folder, a .model or a tokenizer.json."""
    if spec in REFERENCES:
        import mistral_common  # loads mistral_common: only when used

        path = Path(mistral_common.__file__).parent / "data" / REFERENCES[spec]
        if not path.is_file():
            raise OcciError(f"reference tokenizer {spec}: {path} is missing; reinstall mistral-common")
        return TekkenTokenizer(path, spec) if path.suffix == ".json" else SentencePieceTokenizer(path, spec)
    path = Path(spec)
    if path.is_dir():
        if (path / "tokenizer.model").is_file():
            return SentencePieceTokenizer(path / "tokenizer.model", path.name or spec)
        if (path / "tokenizer.json").is_file():
            return HFTokenizer(path / "tokenizer.json", path.name or spec)
        raise OcciError(f"{path}: no tokenizer.model or tokenizer.json in this folder")
    if path.is_file():
        try:
            return HFTokenizer(path, path.stem) if path.suffix == ".json" else SentencePieceTokenizer(path, path.stem)
        except Exception as err:  # sentencepiece and tokenizers raise their own types for bad files
            raise OcciError(f"{path}: not a tokenizer ({type(err).__name__}: {str(err)[:200]})") from None
    raise OcciError(f"tokenizer {spec!r}: no such file or folder, and not a reference ({', '.join(REFERENCES)})")
