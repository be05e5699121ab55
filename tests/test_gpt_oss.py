"""gpt-oss as a family: MXFP4 experts dequantized at import (as transformers dequantizes them), an
MXFP4 base imported, exported unquantized with the dequantized values, trained a few steps at
expert-parallel size 2; and the one-line refusals of what occi cannot express. Import -> export
at TP=1 and TP=2 with megatron's own forward against transformers: tests/test_import.py.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, needs_module, occi
from hf_bases import logits, make_base
from test_import import TOKENS, import_config

TRAIN = {"micro_batch_size": 2, "global_batch_size": 4, "steps": 3, "warmup_steps": 1, "lr": 0.001, "min_lr": 0.0001,
         "expert_parallel": 2, "data_parallel": 2}
PACKED = ("gate_up_proj", "down_proj")

GPT_OSS_20B = {"architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "attention_bias": True,
               "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880, "intermediate_size": 2880,
               "layer_types": ["sliding_attention", "full_attention"] * 12, "max_position_embeddings": 131072,
               "num_attention_heads": 64, "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_key_value_heads": 8,
               "num_local_experts": 32, "rms_norm_eps": 1e-05, "quantization_config": {"quant_method": "mxfp4"},
               "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
                                "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": False},
               "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0,
               "tie_word_embeddings": False, "vocab_size": 201088}
"""openai/gpt-oss-20b's published config.json (architecture numbers; its modules_to_not_convert,
token ids and versions left out), https://huggingface.co/openai/gpt-oss-20b/blob/main/config.json."""


def test_mxfp4_dequantizes_as_transformers_does():
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    from occi.train import mxfp4

    generator = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 256, (3, 48, 2, 16), dtype=torch.uint8, generator=generator)
    scales = torch.randint(120, 134, (3, 48, 2), dtype=torch.uint8, generator=generator)
    expected = convert_moe_packed_tensors(blocks, scales, dtype=torch.float32)
    assert torch.equal(mxfp4.dequantize(blocks, scales, torch.float32), expected)
    assert torch.equal(mxfp4.dequantize(blocks[1], scales[1], torch.float32), expected[1])  # one expert alone
    assert torch.equal(mxfp4.dequantize(*mxfp4.quantize(expected), torch.float32), expected)


@pytest.fixture(scope="module")
def mxfp4_base(tmp_path_factory) -> tuple[Path, Path]:
    """(MXFP4 base, the same model with its experts dequantized, stored unquantized)."""
    from safetensors.torch import load_file, save_file

    from occi.train import mxfp4

    folder = tmp_path_factory.mktemp("gpt-oss")
    plain = make_base(folder / "plain", "gpt_oss")
    packed = folder / "mxfp4"
    shutil.copytree(plain, packed)
    index = json.loads((plain / "model.safetensors.index.json").read_text())
    for shard in sorted(set(index["weight_map"].values())):
        tensors, dequantized = load_file(plain / shard), load_file(plain / shard)
        for name in [n for n in tensors if n.endswith(PACKED)]:
            blocks, scales = mxfp4.quantize(tensors.pop(name))
            tensors |= {f"{name}_blocks": blocks, f"{name}_scales": scales}
            index["weight_map"] |= {f"{name}_blocks": shard, f"{name}_scales": shard}
            del index["weight_map"][name]
            dequantized[name] = mxfp4.dequantize(blocks, scales, torch.float32).contiguous()
        save_file(tensors, packed / shard, metadata={"format": "pt"})
        save_file(dequantized, plain / shard, metadata={"format": "pt"})
    (packed / "model.safetensors.index.json").write_text(json.dumps(index))
    config = json.loads((packed / "config.json").read_text())
    (packed / "config.json").write_text(json.dumps({**config, "quantization_config": {"quant_method": "mxfp4"}}))
    return packed, plain


@pytest.fixture(scope="module")
def imported(mxfp4_base, tmp_path_factory) -> tuple[Path, Path, str]:
    folder = tmp_path_factory.mktemp("gpt-oss-run")
    config = import_config(folder, mxfp4_base[0], tokenizer="base", **TRAIN)
    run_dir = folder / "run"
    for stage in (["corpora", "build"], ["tokenizer", "train"], ["import"]):
        result = occi(*stage, str(config), "--run-dir", str(run_dir))
        assert result.returncode == 0, result.stderr[-3000:]
    return config, run_dir, result.stdout


def test_an_mxfp4_base_imports_the_dequantized_values_and_exports_them_unquantized(mxfp4_base, imported):
    from safetensors import safe_open

    packed, plain = mxfp4_base
    config, run_dir, said = imported
    assert "imported GptOssForCausalLM" in said and "8 MXFP4 tensors dequantized to bf16, one expert at a time" in said
    result = occi("export", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    exported = json.loads((run_dir / "hf" / "config.json").read_text())
    assert "quantization_config" not in exported and exported["architectures"] == ["GptOssForCausalLM"]
    index = json.loads((plain / "model.safetensors.index.json").read_text())["weight_map"]
    out = {}
    for path in (run_dir / "hf").glob("*.safetensors"):
        with safe_open(path, framework="pt") as handle:
            out |= {name: handle.get_tensor(name) for name in handle.keys()}
    for name in [n for n in index if n.endswith(PACKED)]:
        with safe_open(plain / index[name], framework="pt") as handle:
            assert torch.equal(out[name], handle.get_tensor(name)), name
    expected, actual = logits(plain, TOKENS), logits(run_dir / "hf", TOKENS)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()


def test_a_few_training_steps_at_expert_parallel_2(imported, tmp_path):
    config, run_dir, _ = imported
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)  # the export test reads the untrained import
    for stage in (["data", "prepare"], ["train"]):
        result = occi(*stage, str(config), "--run-dir", str(copy))
        assert result.returncode == 0, result.stderr[-3000:]
    steps = [json.loads(line) for line in (copy / "train" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in steps if r["kind"] == "train"]
    assert len(losses) == TRAIN["steps"] and all(np.isfinite(losses)), losses


def test_what_occi_cannot_express_is_one_line(tmp_path):
    from occi.errors import OcciError
    from occi.families import family

    gpt_oss = family("gpt_oss", "test")
    config = json.loads(make_base(tmp_path / "base", "gpt_oss").joinpath("config.json").read_text())
    yarn = config["rope_parameters"]
    for change, message in [({"swiglu_alpha": 1.5}, "swiglu_alpha 1.5"),
                            ({"attention_bias": False}, "attention_bias false"),
                            ({"rope_parameters": {**yarn, "truncate": True}}, "YaRN with truncate true"),
                            ({"rope_parameters": {**yarn, "rope_type": "linear"}}, "RoPE scaling 'linear'"),
                            ({"layer_types": ["sliding_attention", "full_attention", "full_attention",
                                              "sliding_attention"]}, "full attention every n-th layer")]:
        with pytest.raises(OcciError, match=message) as err:
            gpt_oss.model_fields({**config, **change}, "base/config.json")
        assert "\n" not in str(err.value) and str(err.value).startswith("base/config.json: ")


def readme_gpt_oss_config() -> str:
    """The gpt-oss-20b config the README shows (its first YAML block after "Continuing gpt-oss-20b")."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    after = text[text.index("Continuing gpt-oss-20b"):]
    return after[after.index("```yaml\n") + len("```yaml\n"):after.index("```\n", after.index("```yaml"))]


def test_the_readmes_gpt_oss_20b_config_renders_for_slurm_and_plans_as_the_readme_says(tmp_path):
    from occi.config import load

    config = tmp_path / "gpt-oss.yaml"
    config.write_text(readme_gpt_oss_config())
    recipe, shown = load(str(REPO / "configs" / "cpt-gpt-oss-20b.yaml")), load(str(config))
    for section in ("languages", "corpora", "tokenizer", "model"):  # the recipe is the README's run ...
        assert getattr(shown, section) == getattr(recipe, section), section
    for key in yaml.safe_load(config.read_text())["train"]:  # ... plus warm-up, schedule and intervals
        assert getattr(shown.train, key) == getattr(recipe.train, key), key
    run_dir = tmp_path / "run"
    (run_dir / "base").mkdir(parents=True)  # as `occi import` leaves it; no download here
    (run_dir / "base" / "config.json").write_text(json.dumps(GPT_OSS_20B))
    (run_dir / "corpora").mkdir()  # planning corpora needs the hub: mark that stage done
    (run_dir / "corpora" / "_DONE").write_text("{}")
    result = occi("slurm", "submit", str(config), "--run-dir", str(run_dir), "--cluster", "leonardo-booster",
                  "--dry-run")
    assert result.returncode == 0, result.stderr
    steps = {s["step"]: s for s in json.loads((run_dir / "slurm" / "plan.json").read_text())["steps"]}
    assert steps["import"]["after"] == ["tokenizer"] and steps["train"]["nodes"] == 4
    result = occi("plan", str(config), "--cluster", "leonardo-booster", "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["parameters"] == 20_914_757_184  # gpt-oss-20b's checkpoint: sinks and biases included
    # 6 x the active matmul parameters (top-4 experts; the input embedding is a lookup) + attention
    active = (plan["flops_per_token"] - 12 * 24 * 2880 * 4096) / 6
    assert round(active / 1e8) == 36  # the 3.6B active parameters OpenAI publishes for gpt-oss-20b
    assert plan["gpus"] == 16 and plan["memory"]["fits"], plan["memory"]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    said = (f"{plan['gpus']} A100 64 GB on {plan['nodes']} nodes, {plan['parameters']:,} parameters, "
            f"{plan['tokens'] / 1e9:.1f} B tokens, {plan['gpu_hours']:,.0f} GPU-hours at MFU {plan['mfu']}")
    assert said in " ".join(readme.split()), said
    memory = plan["memory"]
    said = (f"{plan['wall_hours']:.0f} h in {plan['jobs']} chained 24 h jobs), {plan['energy_kwh']:,.0f} kWh, and "
            f"{memory['peak_bytes'] / 2**30:.1f} GiB predicted per GPU: fits, {memory['headroom_bytes'] / 2**30:.1f} GiB")
    assert said in " ".join(readme.split()), said


# ------------------------------------------------------------------------------------------- GGUF

@pytest.fixture(scope="module")
def gguf_export(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(tiny gpt-oss with the published clamp 7.0 and expert weights large enough to reach it, the
    same model with YaRN's correction range rounded (truncate true, as llama.cpp computes it), its
    f32 GGUF written by occi)."""
    from safetensors.torch import load_file, save_file

    from gguf_checks import write_f32

    folder = tmp_path_factory.mktemp("gpt-oss-gguf")
    base = make_base(folder / "base", "gpt_oss", swiglu_limit=7.0)
    for shard in base.glob("*.safetensors"):
        tensors = load_file(shard)
        if any(name.endswith("gate_up_proj") for name in tensors):
            save_file({name: value * 60 if name.endswith("gate_up_proj") else value for name, value in tensors.items()},
                      shard, metadata={"format": "pt"})
    rounded = folder / "rounded"
    shutil.copytree(base, rounded)
    config = json.loads((base / "config.json").read_text())
    assert config["rope_parameters"]["truncate"] is False
    (rounded / "config.json").write_text(json.dumps({**config, "rope_parameters": {
        **config["rope_parameters"], "truncate": True}}))
    return base, rounded, write_f32(base, folder / "gpt-oss-f32.gguf")


def test_gguf_holds_llama_cpps_gpt_oss_tensors_and_keys(gguf_export):
    import gguf

    base, _, path = gguf_export
    reader = gguf.GGUFReader(str(path))
    value = lambda key: reader.fields[key].contents()  # noqa: E731
    assert value("general.architecture") == "gpt-oss"
    assert value("gpt-oss.attention.sliding_window") == 8 and value("gpt-oss.expert_feed_forward_length") == 32
    assert (value("gpt-oss.expert_count"), value("gpt-oss.expert_used_count")) == (4, 2)
    assert value("gpt-oss.rope.scaling.type") == "yarn" and value("gpt-oss.rope.scaling.factor") == 4.0
    assert value("gpt-oss.rope.scaling.original_context_length") == 64
    tensors = {t.name: [int(n) for n in t.shape] for t in reader.tensors}
    # gguf-py lists dimensions innermost first: [hidden, inner, experts] is a linear layer's [experts, inner, hidden]
    assert tensors["blk.1.ffn_gate_exps.weight"] == tensors["blk.1.ffn_up_exps.weight"] == [64, 32, 4]
    assert tensors["blk.1.ffn_down_exps.weight"] == [32, 64, 4] and tensors["blk.1.ffn_down_exps.bias"] == [64, 4]
    assert tensors["blk.1.ffn_gate_exps.bias"] == [32, 4] and tensors["blk.1.attn_sinks.weight"] == [4]
    assert tensors["blk.1.ffn_gate_inp.bias"] == [4] and "blk.1.post_attention_norm.weight" in tensors
    assert not any("gate_up" in name for name in tensors)


@needs_module("llama_cpp", "llama-cpp-python")
def test_llama_cpp_runs_the_gguf_as_transformers_with_yarn_rounded(gguf_export):
    """llama.cpp's YaRN rounds the correction range to whole dimensions (ggml_rope_yarn_corr_dims),
    which gpt-oss' published YaRN does not (truncate false): llama.cpp's logits are transformers' with
    truncate true within 1e-4 (f32 throughout), and its greedy tokens the same; the clamp is reached."""
    from gguf_checks import PROMPT, llama_cpp_run, transformers_run

    base, rounded, path = gguf_export
    logits, greedy = llama_cpp_run(path)
    expected, generated = transformers_run(rounded)
    assert np.abs(logits - expected).max() < 1e-4, np.abs(logits - expected).max()
    assert greedy == generated[: len(greedy)] and len(greedy) >= 8, (greedy, generated)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="eager")
    gate_up = model.model.layers[0].mlp.experts.gate_up_proj.detach()
    with torch.no_grad():
        hidden = model.model.layers[0].post_attention_layernorm(model.model.embed_tokens(torch.tensor(PROMPT)))
    assert ((hidden @ gate_up).abs() > 7.0).float().mean() > 0.1  # the clamp changes these values


def test_gguf_refuses_what_llama_cpps_gpt_oss_graph_fixes_otherwise(gguf_export, tmp_path):
    from gguf_checks import write_f32

    from occi.errors import OcciError

    base = gguf_export[0]
    config = json.loads((base / "config.json").read_text())
    for change, message in [({"swiglu_limit": 0.3}, "swiglu_limit 0.3 cannot be written as GGUF"),
                            ({"layer_types": ["full_attention", "sliding_attention"] * 2},
                             "slides a window on layers 0, 2, 4")]:
        folder = tmp_path / "changed"
        shutil.copytree(base, folder, dirs_exist_ok=True)
        (folder / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(OcciError, match=message) as err:
            write_f32(folder, tmp_path / "refused.gguf")
        assert "\n" not in str(err.value) and str(err.value).startswith(str(folder / "config.json"))
        assert not (tmp_path / "refused.gguf").exists()


# ------------------------------------------------------------------ SFT with the harmony template

HARMONY_CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How much is 6 times 7?"},
                {"role": "assistant", "content": "It is 42.", "reasoning": "Six sevens are forty-two."}]


def test_the_harmony_mask_is_the_assistant_turn_token_by_token(tmp_path):
    """The analysis and final channels after the generation prompt `<|start|>assistant` are trained
    on, through `<|return|>`; the system header, the developer and user messages are not."""
    from harmony import add_harmony
    from hf_bases import save_tokenizer

    from occi.sft import template

    save_tokenizer(tmp_path)
    add_harmony(tmp_path)
    tokenizer = template.load_tokenizer(tmp_path)
    prompt = ("<|start|>system<|message|>Reasoning: medium<|end|><|start|>developer<|message|># Instructions\n\n"
              "Be brief.<|end|><|start|>user<|message|>How much is 6 times 7?<|end|><|start|>assistant")
    with_reasoning = ("<|channel|>analysis<|message|>Six sevens are forty-two.<|end|>"
                      "<|start|>assistant<|channel|>final<|message|>It is 42.<|return|>")
    without = "<|channel|>final<|message|>It is 42.<|return|>"
    answer_only = [*HARMONY_CHAT[:2], {"role": "assistant", "content": "It is 42."}]
    for messages, answer in ((HARMONY_CHAT, with_reasoning), (answer_only, without)):
        encoded = template.encode(tokenizer, messages)
        assert template.render(tokenizer, template.for_template(tokenizer, messages)) == prompt + answer
        head, tail = (tokenizer(text, add_special_tokens=False)["input_ids"] for text in (prompt, answer))
        assert encoded.ids == head + tail
        assert encoded.assistant == [False] * len(head) + [True] * len(tail)
        assert encoded.ids == list(tokenizer.apply_chat_template(template.for_template(tokenizer, messages),
                                                                 tokenize=True, return_dict=True)["input_ids"])
    assert template.reasoning_field(tokenizer) == "thinking"


def test_sft_with_the_harmony_template_the_base_ships(imported, tmp_path):
    """A few SFT steps of the imported tiny gpt-oss on conversations with and without reasoning,
    through the template its tokenizer ships (kept as the base's, not occi's)."""
    import yaml
    from harmony import HARMONY_TEMPLATE, add_harmony

    from occi import config as run_config
    from occi.rundir import RunDir
    from occi.sft import template
    from occi.train.export import run_tokenizer_dir

    config, run_dir, _ = imported
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    rows = [{"messages": HARMONY_CHAT, "language": "en"},
            {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
             "language": "en"},
            {"messages": [{"role": "user", "content": "Wie viel ist 2 plus 3?"},
                          {"role": "assistant", "content": "Das ist 5.", "reasoning": "Zwei und drei."}],
             "language": "de"},
            {"messages": [{"role": "user", "content": "Sag hallo."}, {"role": "assistant", "content": "Hallo!"}],
             "language": "de"}]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = yaml.safe_load(config.read_text())
    data["model"]["seq_length"] = 192  # the harmony header alone is ~50 tokens of the 300-piece test tokenizer
    data["sft"] = {"sources": [{"name": "harmony", "kind": "jsonl", "path": str(tmp_path / "chat.jsonl")}],
                   "checks": {"language_id": False}, "seq_length": 192, "epochs": 2, "micro_batch_size": 2,
                   "packing": False,  # a sliding-window model: one conversation per sequence
                   "global_batch_size": 4, "lr": 0.001, "min_lr": 0.0001, "save_interval": 1000}
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = occi("import", str(path), "--run-dir", str(copy), "--reconfigure")  # a longer sequence, an sft section
    assert result.returncode == 0, result.stderr[-3000:]
    add_harmony(run_tokenizer_dir(run_config.load(str(path)), RunDir(copy)))
    result = occi("sft", str(path), "--run-dir", str(copy))
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((copy / "sft" / "data" / "stats.json").read_text())
    assert stats["template"] == "base" and stats["totals"]["kept"] == 4
    tokenizer = template.load_tokenizer(copy / "sft" / "tokenizer")
    assert tokenizer.chat_template == HARMONY_TEMPLATE
    from occi.sft.data import parse
    from occi.sft.config import ChatSourceConfig

    source = ChatSourceConfig(name="harmony", kind="jsonl", path="chat.jsonl")
    answer_tokens = sum(sum(template.encode(tokenizer, parse(r, source, ["en", "de"])[0]).assistant) for r in rows)
    assert stats["totals"]["assistant_tokens"] == answer_tokens
    steps = [json.loads(line) for line in (copy / "sft" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in steps if r["kind"] == "train"]
    assert len(losses) == 2 and all(np.isfinite(losses)), losses
