"""Writes models/tiny-llama-base/: the small open "base model" that configs/demo-cpt.yaml continues.

A Llama 3 style model (byte-level BPE tokenizer.json, tied embeddings, GQA) of 2 layers and width
64, pretrained here for a few hundred steps on the English demo documents, saved with safetensors
in two shards: a stand-in for an open base (Llama, Mistral, Qwen) that runs on a laptop. Run from
the repository root; the output is deterministic up to floating-point summation order.

    .venv/bin/python scripts/make_tiny_base.py
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "models" / "tiny-llama-base"
STEPS, SEQ, BATCH = 300, 64, 8


def english_lines() -> list[str]:
    rows = (ROOT / "corpora" / "demo" / "en.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(row)["text"] for row in rows]


def tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=512, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
                                   clean_up_tokenization_spaces=False)


def main() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    texts = english_lines()
    tok = tokenizer(texts)
    config = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         rope_parameters={"rope_type": "default", "rope_theta": 500000.0}, rms_norm_eps=1e-5,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(config)
    stream = torch.tensor([i for t in texts for i in tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for step in range(STEPS):
        starts = torch.randint(0, len(stream) - SEQ - 1, (BATCH,))
        batch = torch.stack([stream[s:s + SEQ] for s in starts])
        loss = model(batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == STEPS - 1:
            print(f"step {step}: loss {loss.item():.3f}")
    model.save_pretrained(OUT, safe_serialization=True, max_shard_size="300KB")
    tok.save_pretrained(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
