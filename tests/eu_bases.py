"""The published config.json values (architecture numbers only) of the EU bases the cluster recipes
start from, as `occi import` leaves them in <run>/base/config.json, and tiny random bases with the
same flags for the tests (fewer and narrower layers, a smaller vocabulary).

Sources (no network here; what was read, and where a value could not be read, say so):
- utter-project/EuroLLM-9B: the model card's architecture table (42 layers, width 4096, FFN 12288,
  32 heads, 8 key-value heads, RoPE theta 10,000, no tied embeddings, 4,096-token sequences,
  128,000-piece vocabulary); rms_norm_eps 1e-5 as in the published config.json (not re-read here).
- BSC-LT/salamandra-7b: the model card's architecture table (32 layers, width 4096, 32 heads, 8 query
  groups, context 8192, vocabulary 256,000, 7,768,117,248 parameters with 1,048,576,000 per
  embedding, so untied); FFN 11008 is what that parameter count leaves; rope_theta 10,000 and
  rms_norm_eps 1e-5 as in the published config.json (not re-read here).
- swiss-ai/Apertus-8B-2509: its config.json as quoted in ollama's Apertus tests
  (x/mlxrunner/model/apertus).
"""
from __future__ import annotations

EUROLLM_9B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
              "intermediate_size": 12288, "num_hidden_layers": 42, "num_attention_heads": 32,
              "num_key_value_heads": 8, "vocab_size": 128000, "max_position_embeddings": 4096,
              "rope_theta": 10000.0, "rope_scaling": None, "rms_norm_eps": 1e-5, "hidden_act": "silu",
              "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False}

SALAMANDRA_7B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
                 "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
                 "num_key_value_heads": 8, "vocab_size": 256000, "max_position_embeddings": 8192,
                 "rope_theta": 10000.0, "rope_scaling": None, "rms_norm_eps": 1e-5, "hidden_act": "silu",
                 "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False}

APERTUS_8B = {"architectures": ["ApertusForCausalLM"], "model_type": "apertus", "hidden_size": 4096,
              "intermediate_size": 21504, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "vocab_size": 131072, "max_position_embeddings": 65536,
              "rope_theta": 12000000, "rope_scaling": {"factor": 8, "high_freq_factor": 4, "low_freq_factor": 1,
                                                      "original_max_position_embeddings": 8192, "rope_type": "llama3"},
              "hidden_act": "xielu", "qk_norm": True, "post_norm": False, "attention_bias": False,
              "mlp_bias": False, "tie_word_embeddings": False, "rms_norm_eps": 1e-5}

RECIPES = {"cpt-eurollm-9b": EUROLLM_9B, "cpt-salamandra-7b": SALAMANDRA_7B, "cpt-apertus-8b": APERTUS_8B}
"""Recipe name -> its base's config.json."""


def apertus_config(**overrides):
    """A tiny Apertus with the real one's flags: q/k norm, xIELU, Llama 3.1 RoPE scaling, GQA, untied."""
    from transformers import ApertusConfig

    scaling = {key: (value if key.startswith("original") else float(value))
               for key, value in APERTUS_8B["rope_scaling"].items() if key != "rope_type"}
    config = ApertusConfig(vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16384,
                           rms_norm_eps=1e-5, bos_token_id=0, eos_token_id=1, pad_token_id=None,
                           tie_word_embeddings=False, attn_implementation="eager",
                           rope_parameters={"rope_type": "llama3", "rope_theta": 12000000.0, **scaling})
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def make_apertus_base(folder, seed: int = 0, **overrides):
    """A random tiny Apertus saved as hf_bases.make_base saves its bases: every weight random, norms
    around 1, xIELU's alpha_p / alpha_n random and its beta different in every layer, so that a
    misplaced tensor changes the logits."""
    import torch
    from transformers import AutoModelForCausalLM

    from hf_bases import save_tokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(apertus_config(**overrides), dtype=torch.float32)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 1:
                param.copy_((1.0 if "norm" in name else 0.0) + 0.1 * torch.randn_like(param))
            else:
                param.normal_(0.0, 0.05)
        for layer in model.model.layers:
            layer.mlp.act_fn.beta.fill_(0.5 + 0.1 * torch.randn(()).item())
    model.save_pretrained(str(folder), safe_serialization=True, max_shard_size="100KB")
    save_tokenizer(folder)
    return folder
