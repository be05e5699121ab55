"""A tiny transformers model written as GGUF by occi and run by llama.cpp (through
llama-cpp-python), against transformers: the families' GGUF tests share this."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

PROMPT = [int(t) for t in torch.randint(2, 300, (100,), generator=torch.Generator().manual_seed(3))]
"""100 token ids: past the tiny bases' sliding windows (8) and YaRN's original context (64)."""
NEW_TOKENS = 16


def write_f32(hf_dir: Path, out: Path) -> Path:
    """`occi export --format gguf --quant f32`'s writer, in-process."""
    from occi.gguf.quant import QUANT_TYPES
    from occi.gguf.writer import write_gguf

    return write_gguf(hf_dir, out, QUANT_TYPES["f32"], "occi-test")


def transformers_run(hf_dir: Path) -> tuple[np.ndarray, list[int]]:
    """(logits of PROMPT, NEW_TOKENS greedy tokens after it) in float32."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        logits = model(torch.tensor([PROMPT])).logits[0].numpy()
        generated = model.generate(torch.tensor([PROMPT]), max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                   do_sample=False, eos_token_id=None, pad_token_id=0)[0, len(PROMPT):].tolist()
    return logits, generated


def llama_cpp_run(path: Path) -> tuple[np.ndarray, list[int]]:
    """(logits of PROMPT, greedy tokens after it, stopping early at the end-of-text token) with an
    f32 KV cache, so that llama.cpp computes in f32 throughout; the context holds them all, past
    a model's trained context where that is shorter (as transformers' positions go on)."""
    from occi.eval.llamacpp import LlamaCppLM

    lm = LlamaCppLM(str(path), n_ctx=len(PROMPT) + NEW_TOKENS, f32_cache=True)
    return lm.logits(PROMPT), lm.greedy(PROMPT, NEW_TOKENS)
