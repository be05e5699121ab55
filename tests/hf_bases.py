"""Tiny random Hugging Face base models for the import tests, built in-process (never downloaded).

Each is saved with safetensors in 2+ shards, with a byte-level BPE tokenizer (tokenizer.json, as
Llama 3 and Qwen have) trained here on the demo corpus. Every weight is drawn at random, norms
and biases included, so that a misplaced tensor changes the logits.

`make_real_tokenizer_base` gives a tiny random Mistral the real tokenizers mistral-common ships, as
the hub repositories carry them: Mistral-7B-v0.1's SentencePiece model (tokenizer.model plus the
tokenizer.json transformers converts from it) or Tekken (the tokenizer.json transformers converts
from tekken.json, as Mistral-Nemo's and Apertus' repositories have).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

DEMO = Path(__file__).resolve().parents[1] / "corpora" / "demo"
TOKENIZER_VOCAB = 300
"""Pieces of the test tokenizer; the models' embeddings have 320 rows (a multiple of 2 and 4)."""

LLAMA31_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_theta": 500000.0}


def demo_lines(codes=("en", "de", "fr", "fi", "sv", "et")) -> list[str]:
    lines = []
    for code in codes:
        for row in (DEMO / f"{code}.jsonl").read_text(encoding="utf-8").splitlines():
            lines.extend(line for line in json.loads(row)["text"].splitlines() if line.strip())
    return lines


def save_tokenizer(folder: Path, vocab: int = TOKENIZER_VOCAB) -> None:
    """A byte-level BPE tokenizer.json with <|begin_of_text|> / <|end_of_text|> (Llama 3 style)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    raw.train_from_iterator(demo_lines(), trainer)
    PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
                            clean_up_tokenization_spaces=False).save_pretrained(str(folder))


def _llama(common: dict):  # Llama 3.1: RoPE scaling, tied embeddings
    from transformers import LlamaConfig

    return LlamaConfig(**{**common, "max_position_embeddings": 16384}, rope_parameters=dict(LLAMA31_SCALING),
                       tie_word_embeddings=True)


def _mistral(common: dict):  # a sliding window shorter than the test sequences
    from transformers import MistralConfig

    return MistralConfig(**common, sliding_window=8, tie_word_embeddings=False)


def _qwen2(common: dict):  # qkv biases
    from transformers import Qwen2Config

    return Qwen2Config(**common, tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})


def _qwen3(common: dict):  # q/k norm, a head width other than hidden / heads, plain multi-head attention
    from transformers import Qwen3Config

    return Qwen3Config(**{**common, "num_key_value_heads": 4}, head_dim=32, tie_word_embeddings=True)


def _mixtral(common: dict):  # routed experts only, every layer
    from transformers import MixtralConfig

    return MixtralConfig(**{**common, "intermediate_size": 48}, num_local_experts=4, num_experts_per_tok=2,
                         tie_word_embeddings=False)


def _qwen3_moe(common: dict):  # q/k norm, dense layers 0 and 2 (decoder_sparse_step 2), top-k not renormalised
    from transformers import Qwen3MoeConfig

    return Qwen3MoeConfig(**common, moe_intermediate_size=32, num_experts=6, num_experts_per_tok=2,
                          decoder_sparse_step=2, norm_topk_prob=False, tie_word_embeddings=False)


def _qwen2_moe(common: dict):  # a gated shared expert, qkv biases, top-k renormalised
    from transformers import Qwen2MoeConfig

    return Qwen2MoeConfig(**common, moe_intermediate_size=32, shared_expert_intermediate_size=64, num_experts=4,
                          num_experts_per_tok=2, norm_topk_prob=True, tie_word_embeddings=False)


def _gemma3_text(common: dict):
    """Sliding (RoPE base 10k) and full (100k, linearly scaled) layers alternating, a window shorter
    than the test sequences, attention scaled by a scalar other than the head width."""
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(**common, head_dim=32, sliding_window=8, sliding_window_pattern=2,
                            query_pre_attn_scalar=24, rope_theta=100000.0, rope_local_base_freq=10000.0,
                            rope_scaling={"rope_type": "linear", "factor": 4.0}, tie_word_embeddings=True,
                            pad_token_id=None)


def _apertus(common: dict):  # xIELU in an ungated MLP, q/k norm, Apertus' norm names, Llama 3.1 RoPE scaling
    from transformers import ApertusConfig

    return ApertusConfig(**{**common, "max_position_embeddings": 16384}, pad_token_id=None, tie_word_embeddings=False,
                         rope_parameters={**LLAMA31_SCALING, "rope_theta": 12000000.0})


GPT_OSS_YARN = {"rope_type": "yarn", "factor": 4.0, "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False,
                "original_max_position_embeddings": 64, "rope_theta": 150000.0}


def _gpt_oss(common: dict):
    """Sliding and full layers alternating (a window shorter than the test sequences), attention
    sinks, biases everywhere, YaRN, 4 experts top-2 with a clamp the random weights reach."""
    from transformers import GptOssConfig

    return GptOssConfig(**{**common, "intermediate_size": 32}, head_dim=16, num_local_experts=4,
                        num_experts_per_tok=2, sliding_window=8, swiglu_limit=0.3,
                        rope_parameters=dict(GPT_OSS_YARN), tie_word_embeddings=False)


def _deepseek_v3(common: dict):  # latent attention, layer 0 dense, sigmoid group-limited routing, a shared expert
    from transformers import DeepseekV3Config

    return DeepseekV3Config(**{**common, "num_key_value_heads": 4, "rms_norm_eps": 1e-6}, moe_intermediate_size=32,
                            n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, n_group=2, topk_group=1,
                            first_k_dense_replace=1, routed_scaling_factor=2.5, norm_topk_prob=True, q_lora_rank=24,
                            kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=12,
                            rope_interleave=True, tie_word_embeddings=False)


BUILDERS = {"llama": _llama, "mistral": _mistral, "qwen2": _qwen2, "qwen3": _qwen3, "mixtral": _mixtral,
            "qwen3_moe": _qwen3_moe, "qwen2_moe": _qwen2_moe, "gemma3_text": _gemma3_text, "apertus": _apertus,
            "gpt_oss": _gpt_oss, "deepseek_v3": _deepseek_v3}
"""model_type of every family in occi/families/ -> a tiny transformers config of it (from the
shared widths below), each meeting the family's particular features. The import/export tests
parametrize over the registry and read this: a new family needs one builder here."""


def config_for(kind: str, **overrides):
    common = dict(vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, bos_token_id=0,
                  eos_token_id=1, attn_implementation="eager")
    config = BUILDERS[kind](common)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def make_base(folder: Path, kind: str, seed: int = 0, **overrides) -> Path:
    """A random model of `kind` saved in 2+ safetensors shards with the test tokenizer."""
    save_random_model(folder, config_for(kind, **overrides), seed)
    save_tokenizer(folder)
    return folder


REAL_TOKENIZERS = {"sentencepiece": "tokenizer.model.v1", "tekken": "tekken_240911.json"}
"""mistral-common's files: Mistral-7B-v0.1's SentencePiece model (32,000 pieces), Tekken (131,072 ids)."""


def save_real_tokenizer(folder: Path, kind: str) -> int:
    """Writes the tokenizer files of a hub repository carrying the real tokenizer `kind` (one of
    REAL_TOKENIZERS), converted by transformers itself; returns the number of ids it uses."""
    import shutil

    import mistral_common

    source = Path(mistral_common.__file__).parent / "data" / REAL_TOKENIZERS[kind]
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "sentencepiece":
        from transformers import LlamaTokenizer

        shutil.copy2(source, folder / "tokenizer.model")
        tokenizer = LlamaTokenizer.from_pretrained(str(folder), add_bos_token=True)  # converts tokenizer.model
    else:
        from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer

        tokenizer = convert_tekken_tokenizer(str(source), chat_template=None)
    tokenizer.save_pretrained(str(folder))
    return len(tokenizer)


def make_real_tokenizer_base(folder: Path, kind: str, seed: int = 0) -> Path:
    """A tiny random Mistral (2 layers, hidden 64) whose vocabulary is the real tokenizer's."""
    size = save_real_tokenizer(folder, kind)
    save_random_model(folder, config_for("mistral", vocab_size=size, num_hidden_layers=2, bos_token_id=1,
                                         eos_token_id=2), seed)
    return folder


def save_random_model(folder: Path, config, seed: int) -> None:
    """A model of `config` with every weight drawn at random, saved in 2+ safetensors shards."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 1:
                param.copy_((1.0 if "norm" in name else 0.0) + 0.1 * torch.randn_like(param))
            else:
                param.normal_(0.0, 0.05)
        for name, buffer in model.named_buffers():
            if name.endswith("e_score_correction_bias"):  # DeepSeek-V3's routing bias: not zero, so that it counts
                buffer.normal_(0.0, 0.1)
    model.save_pretrained(str(folder), safe_serialization=True, max_shard_size="100KB")


def logits(folder: Path, tokens: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        return model(tokens).logits
