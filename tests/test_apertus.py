"""Apertus (occi/families/apertus.py, occi/train/layers/xielu.py) beyond the import -> megatron
forward -> export exactness every family gets in tests/test_import.py (Apertus at TP=1, TP=2 and
PP=2): xIELU equal to transformers' in fp32 and bf16, its scalars' gradients summed over
tensor-parallel ranks, training from an imported base at TP=2, GGUF run by llama.cpp; and the
cluster recipes of the EU bases (cpt-eurollm-9b, cpt-salamandra-7b, cpt-apertus-8b): rendered for
SLURM, planned with their bases' published shapes, tiny bases with the same flags imported and
exported exactly.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, have_module, in_ci, occi
from eu_bases import RECIPES, make_apertus_base
from hf_bases import logits, save_tokenizer

TOKENS = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- xIELU


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_xielu_equals_transformers_bit_for_bit(dtype):
    from transformers.activations import XIELUActivation

    from occi.train.layers.xielu import XIELU

    theirs, ours = XIELUActivation(dtype=dtype), XIELU(dtype=dtype)
    assert {k: (v.shape, v.dtype) for k, v in theirs.state_dict().items()} == \
        {k: (v.shape, v.dtype) for k, v in ours.state_dict().items()}
    assert all(torch.equal(theirs.state_dict()[k], v) for k, v in ours.state_dict().items()), "the same start"
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name in ("alpha_p", "alpha_n"):
            value = torch.randn(1, generator=generator).to(dtype)
            getattr(theirs, name).copy_(value)
            getattr(ours, name).copy_(value)
    x = (torch.randn(4096, generator=generator) * 3).to(dtype)
    x[:6] = torch.tensor([0.0, -1e-7, -1e-6, 1e-7, -5e-7, -30.0])  # around eps, and far into the negative side
    assert torch.equal(ours(x), theirs(x))


def test_xielu_scalar_gradients_are_summed_over_tensor_parallel_ranks(tmp_path):
    """Each tensor-parallel rank applies the layer's xIELU to its slice of the MLP's inner width: the
    gradients of alpha_p and alpha_n must be those of the whole width on every rank."""
    out = tmp_path / "grads.pt"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               str(REPO / "tests" / "xielu_tensor_parallel.py"), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=os.environ)
    assert result.returncode == 0, result.stderr[-3000:]
    grads = torch.load(out)
    assert torch.allclose(grads["split"], grads["whole"], atol=1e-6), grads


def test_a_base_whose_activation_is_not_xielu_is_refused_in_one_line():
    from occi.errors import OcciError
    from occi.families import model_config

    config = {**RECIPES["cpt-apertus-8b"], "hidden_act": "silu"}
    with pytest.raises(OcciError) as caught:
        model_config(config, None, "base/config.json")
    assert str(caught.value) == "base/config.json: hidden_act 'silu'; occi's Apertus converter supports xielu"
    fields = model_config(RECIPES["cpt-apertus-8b"], None, "base/config.json")
    assert (fields.mlp_activation, fields.qk_norm, fields.rope_scaling_factor, fields.rotary_base) == \
        ("xielu", True, 8.0, 12_000_000)
    # a recipe (no base) with an xIELU MLP is not exported as a Llama, which has a gated SiLU MLP
    from occi.families import recipe_family
    from occi.train.config import ModelConfig

    recipe = ModelConfig(num_layers=2, hidden_size=64, ffn_hidden_size=96, num_attention_heads=4, num_query_groups=2,
                         seq_length=32, mlp_activation="xielu")
    with pytest.raises(OcciError, match=r"LlamaForCausalLM: an xIELU MLP"):
        recipe_family(recipe)


# ---------------------------------------------------------------- training


def test_training_from_an_imported_apertus_at_tp2_moves_the_xielu_scalars(tmp_path):
    from test_cpt import cpt_config

    base = make_apertus_base(tmp_path / "base")
    config = cpt_config(tmp_path, base, tensor_parallel=2, steps=4, eval_interval=4, save_interval=4)
    run_dir = tmp_path / "run"
    for stage in (["corpora", "build"], ["tokenizer", "train"], ["import"], ["data", "prepare"], ["train"],
                  ["export"]):
        result = occi(*stage, str(config), "--run-dir", str(run_dir))
        assert result.returncode == 0, (stage, result.stderr[-3000:])
    log = [json.loads(line) for line in (run_dir / "train" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if r["kind"] == "train"]
    assert len(losses) == 4 and all(np.isfinite(losses))
    from safetensors.torch import load_file

    def tensors(folder: Path) -> dict[str, torch.Tensor]:
        found = {}
        for file in folder.glob("*.safetensors"):
            found.update(load_file(str(file)))
        return found

    before, after = tensors(base), tensors(run_dir / "hf")
    assert set(after) == set(before)
    for layer in range(4):
        name = f"model.layers.{layer}.mlp.act_fn."
        for learned in ("alpha_p", "alpha_n"):  # learned: moved by at most 4 Adam steps of lr 0.001
            moved = (after[name + learned] - before[name + learned]).abs().item()
            assert 0 < moved < 0.005, (name + learned, moved)
        for fixed in ("beta", "eps"):  # buffers: carried through unchanged
            assert torch.equal(after[name + fixed], before[name + fixed]), name + fixed
    assert torch.isfinite(logits(run_dir / "hf", TOKENS)).all()


# ---------------------------------------------------------------- GGUF


APERTUS_ROPES = {
    "unscaled": {"rope_type": "default", "rope_theta": 12000000.0},
    # Apertus' own Llama 3.1 scaling, with an original context so short (and a base so small) that
    # most of the rotary frequencies of the test prompt are divided by the rope_freqs factors
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16, "rope_theta": 10000.0},
}


@pytest.mark.parametrize("rope", list(APERTUS_ROPES))
def test_gguf_of_an_apertus_gives_transformers_logits_in_llama_cpp(rope, tmp_path):
    """llama.cpp's `apertus` graph on occi's GGUF: the xIELU scalars as per-layer hyper-parameters,
    q/k norms, the ungated MLP, and Apertus' Llama 3.1 RoPE scaling as the rope_freqs tensor."""
    if not have_module("llama_cpp"):
        if in_ci():
            pytest.fail("llama-cpp-python is not installed (CI installs it)")
        pytest.skip("llama-cpp-python is not installed")
    import gguf

    from test_gguf import LLAMA3_SPLIT, _bpe_tokenizer, hf_logits, reader_value, write_config

    hf = tmp_path / "run" / "hf"
    _bpe_tokenizer(hf, LLAMA3_SPLIT, ["<|begin_of_text|>", "<|end_of_text|>"], "<|begin_of_text|>", "<|end_of_text|>")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf)
    make_apertus_base(tmp_path / "base", vocab_size=(len(tokenizer) + 63) // 64 * 64,
                      rope_parameters=dict(APERTUS_ROPES[rope]),
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    for file in (tmp_path / "base").glob("*"):
        if file.name.endswith((".safetensors", ".json")) and not file.name.startswith("tokenizer"):
            shutil.copy2(file, hf / file.name)
    config = write_config(tmp_path, ["de", "fr"])
    result = occi("export", str(config), "--run-dir", str(tmp_path / "run"), "--format", "gguf", "--quant", "f32")
    assert result.returncode == 0, result.stderr[-3000:]
    path = tmp_path / "run" / "gguf" / "occi-gguftest-f32.gguf"
    reader = gguf.GGUFReader(str(path))
    assert reader_value(reader, "general.architecture") == "apertus"
    base = yaml.safe_load((tmp_path / "base" / "config.json").read_text())
    from safetensors.torch import load_file

    weights = {}
    for file in (tmp_path / "base").glob("*.safetensors"):
        weights.update(load_file(str(file)))
    for name in ("alpha_p", "alpha_n", "beta", "eps"):
        written = reader_value(reader, f"xielu.{name}")
        stored = [weights[f"model.layers.{i}.mlp.act_fn.{name}"].item() for i in range(base["num_hidden_layers"])]
        assert written == pytest.approx(stored, rel=1e-6), name
    names = {t.name for t in reader.tensors}
    assert "blk.0.attn_q_norm.weight" in names and "blk.0.ffn_up.weight" in names
    assert "blk.0.ffn_gate.weight" not in names and not any("act_fn" in n or "xielu" in n for n in names)
    assert ("rope_freqs.weight" in names) == (rope == "llama3")
    from occi.eval.llamacpp import LlamaCppLM

    prompt = tokenizer("Der Markt öffnet um neun Uhr, und die Händler rufen ihre Preise.",
                       add_special_tokens=False)["input_ids"][:32]
    expected = hf_logits(hf, prompt)
    actual = LlamaCppLM(str(path), f32_cache=True).logits(prompt)
    assert np.abs(actual - expected).max() < 1e-4, np.abs(actual - expected).max()


# ---------------------------------------------------------------- the EU-base recipes

CLUSTERS = {"cpt-eurollm-9b": ("leonardo-booster", 8), "cpt-salamandra-7b": ("marenostrum5-acc", 8),
            "cpt-apertus-8b": ("lumi-g", 4)}
PUBLISHED_PARAMETERS = {"cpt-salamandra-7b": 7_768_117_248}
"""Parameter counts the bases' model cards state (EuroLLM's card rounds, Apertus' none is read here)."""


@pytest.mark.parametrize("name", list(CLUSTERS))
def test_eu_base_recipes_render_and_plan_with_their_bases_shapes(name, tmp_path):
    from occi import config
    from occi.rundir import RunDir
    from occi.slurm import estimate
    from occi.slurm.submit import load_profile

    cluster, nodes = CLUSTERS[name]
    run_dir = tmp_path / "run"
    (run_dir / "corpora").mkdir(parents=True)  # planning corpora needs the hub: mark that stage done
    (run_dir / "corpora" / "_DONE").write_text("{}")
    result = occi("slurm", "submit", name, "--run-dir", str(run_dir), "--cluster", cluster, "--dry-run")
    assert result.returncode == 0, result.stderr
    steps = {s["step"]: s for s in json.loads((run_dir / "slurm" / "plan.json").read_text())["steps"]}
    assert list(steps)[:3] == ["tokenizer", "import", "data-tokenize"] and steps["train"]["nodes"] == nodes
    cfg = config.load(name)
    assert cfg.tokenizer.source == "base" and cfg.data.replay and cfg.train.lr < 3e-4
    run = RunDir(tmp_path / "planned")
    run.base.mkdir(parents=True)
    (run.base / "config.json").write_text(json.dumps(RECIPES[name]))  # as `occi import` leaves it
    plan = estimate.estimate(cfg, run, load_profile(cluster)[0], cluster)
    assert plan["memory"]["fits"], plan["memory"]
    if name in PUBLISHED_PARAMETERS:
        assert plan["parameters"] == PUBLISHED_PARAMETERS[name]


def _llama_like(real: dict, vocab_size: int, folder: Path) -> Path:
    """A tiny random Llama with the real base's flags (untied, RoPE base and scaling, norm epsilon,
    activation, its query heads per key/value head) and a smaller vocabulary than the real 128k/256k,
    which would make the test slow."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    flags = {k: real[k] for k in ("rope_theta", "rms_norm_eps", "hidden_act", "attention_bias", "mlp_bias",
                                  "tie_word_embeddings")}
    per_group = real["num_attention_heads"] // real["num_key_value_heads"]
    config = LlamaConfig(**flags, vocab_size=vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=2 * per_group, num_key_value_heads=2, head_dim=8,
                         max_position_embeddings=real["max_position_embeddings"], bos_token_id=0, eos_token_id=1)
    torch.manual_seed(vocab_size)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param.ndim == 1:
                param.copy_(1.0 + 0.1 * torch.randn_like(param))
            else:
                param.normal_(0.0, 0.05)
    model.save_pretrained(str(folder), safe_serialization=True, max_shard_size="100KB")
    save_tokenizer(folder)
    return folder


@pytest.mark.parametrize("name,vocab_size,layout", [("cpt-eurollm-9b", 2048, {"tensor_parallel": 2}),
                                                     ("cpt-salamandra-7b", 4096, {"pipeline_parallel": 2})])
def test_tiny_bases_with_the_recipes_flags_import_and_export_exactly(name, vocab_size, layout, tmp_path):
    from test_import import import_config, megatron_forward

    base = _llama_like(RECIPES[name], vocab_size, tmp_path / "base")
    config = import_config(tmp_path, base, **layout)
    run_dir = tmp_path / "run"
    for stage in ("import", "export"):
        result = occi(stage, str(config), "--run-dir", str(run_dir))
        assert result.returncode == 0, result.stderr[-3000:]
    expected = logits(base, TOKENS)
    assert expected.shape[-1] == vocab_size
    actual = megatron_forward(config, run_dir, 2, tmp_path)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()
    actual = logits(run_dir / "hf", TOKENS)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()
    exported = json.loads((run_dir / "hf" / "config.json").read_text())
    assert exported["tie_word_embeddings"] is False and exported["vocab_size"] == vocab_size
