"""Token ids of documents for a Hugging Face tokenizer.json (a kept base tokenizer such as Llama 3's
or Qwen's byte-level BPE): the `tokenizers` backend that transformers' AutoTokenizer itself
uses, encoding a batch at a time on its own threads.

The ids are exactly AutoTokenizer's for `tokenizer(text, add_special_tokens=False)`: no BOS is
added, and `occi data prepare` appends the end-of-document token, as it does for SentencePiece
(Megatron-LM's --append-eod). tests/test_cpt.py compares both on edge-case text.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa


class HFDocumentEncoder:
    """Encodes batches of documents: all their token ids one after the other, and each one's length."""

    def __init__(self, folder: Path):
        from transformers import AutoTokenizer  # loads transformers: only when used

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.backend = tokenizer.backend_tokenizer
        self.vocab_size = len(tokenizer)
        self.eos_id = tokenizer.eos_token_id
        self.dtype = np.dtype(np.uint16 if self.vocab_size <= 2 ** 16 else np.int32)
        self._encode = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)

    def encode(self, texts: pa.Array | list[str]) -> tuple[np.ndarray, np.ndarray]:
        texts = texts.to_pylist() if isinstance(texts, pa.Array) else list(texts)
        if None in texts:
            raise ValueError("a text is null")
        encoded = [e.ids for e in self._encode(texts, add_special_tokens=False)]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        ids = np.fromiter((i for ids in encoded for i in ids), dtype=self.dtype, count=int(lengths.sum()))
        return ids, lengths

    def encode_all(self, batches: Iterable[pa.Array | list[str]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for batch in batches:
            yield self.encode(batch)
