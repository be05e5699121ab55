"""Tiny chat models with crafted weights, built in-process (never downloaded), for the generation,
distillation and fidelity tests.

The model always writes one token, `favourite`, whatever the input: every layer's output
projections are zero (the residual stream is the token's embedding), every embedding has a
large first coordinate, and only the favourite's lm_head row reads that coordinate. So a real
transformers Llama runs real forward passes and behaves deterministically.
"""
from __future__ import annotations

from pathlib import Path

import torch

from tests.hf_bases import demo_lines

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIAL = ["<|im_start|>", "<|im_end|>", "<think>", "</think>"]
GERMAN = "Das ist eine gute Frage, und die Antwort ist ganz einfach. "
"""An added token: a model whose favourite it is answers every prompt in German."""


def save_tokenizer(folder: Path, extra: list[str] = ()) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator(demo_lines(("en", "de", "fr")), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                        clean_up_tokenization_spaces=False)
    tokenizer.add_tokens(list(extra))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(folder))


def silent_llama(tokenizer):
    """A tiny Llama for `tokenizer` whose layers add nothing (attention and MLP outputs zeroed): its
    logits are lm_head(norm(embedding)) of the last token, which the callers then set by hand."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    return model


def tiny_chat_model(folder: Path, favourite: str, extra: list[str] = ()) -> Path:
    """A model folder whose model writes `favourite` (a token of its tokenizer) at every step."""
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    save_tokenizer(folder, extra)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    ids = tokenizer.encode(favourite, add_special_tokens=False)
    assert len(ids) == 1, f"{favourite!r} is not one token: {ids}"
    model = silent_llama(tokenizer)
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, 0.02)
        model.model.embed_tokens.weight[:, 0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[ids[0], 0] = 10.0
    model.save_pretrained(str(folder))
    model.generation_config.save_pretrained(str(folder))
    return folder


def scripted_chat_model(folder: Path, script: list[str]) -> Path:
    """A model folder whose model writes `script` (each entry one token: special or added) and
    then its end-of-turn token, whatever the prompt.

    Every token's embedding is the first basis vector except the script's, which get the next
    ones in order; the lm_head row of script token i + 1 reads basis vector i + 1 (the one of
    token i), the first script token's row reads the first vector (any prompt token) and the
    end-of-turn row reads the last script token's vector: a chain of bigrams, with real forward passes."""
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    save_tokenizer(folder, [token for token in script if token not in SPECIAL])
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    ids = [tokenizer.encode(token, add_special_tokens=False) for token in script]
    assert all(len(i) == 1 for i in ids), f"a script entry is not one token: {ids}"
    ids = [i[0] for i in ids]
    assert len(set(ids)) == len(ids) and len(ids) < 31, "script tokens must be distinct, at most 30"
    model = silent_llama(tokenizer)
    with torch.no_grad():
        model.model.embed_tokens.weight.zero_()
        model.model.embed_tokens.weight[:, 0] = 1.0
        model.lm_head.weight.zero_()
        for position, token in enumerate(ids):
            model.model.embed_tokens.weight[token] = 0.0
            model.model.embed_tokens.weight[token, position + 1] = 1.0
            model.lm_head.weight[token, position] = 10.0
        model.lm_head.weight[tokenizer.eos_token_id, len(ids)] = 10.0
    model.save_pretrained(str(folder))
    model.generation_config.save_pretrained(str(folder))
    return folder
