"""Gemma 3 (text) as a family: a tiny random Gemma3ForCausalLM imported at TP=1, TP=2 and PP=2 and
exported back with transformers' logits; megatron's own TP=2 forward against transformers; a few
training steps; GGUF run by llama.cpp; and the one-line refusals of what occi cannot express.

The tiny base (tests/hf_bases.py) has random (1 + w) norms, sliding (RoPE base 10k) and full
(100k, linear scaling 4) layers alternating, a window shorter than the sequences and
query_pre_attn_scalar other than the head width, so each Gemma feature changes the logits.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import have_module, in_ci, occi
from hf_bases import logits, make_base
from test_gguf import LLAMA3_SPLIT, _bpe_tokenizer, demo_texts, hf_logits, write_config
from test_import import TOKENS, import_config, megatron_forward

LAYOUTS = {"tp1": {}, "tp2": {"tensor_parallel": 2, "sequence_parallel": True}, "pp2": {"pipeline_parallel": 2}}
"""TP=2 with sequence parallelism, as configs/cpt-gemma-3-4b.yaml trains: the norms then see a slice of the sequence."""
TRAIN = {"micro_batch_size": 2, "global_batch_size": 4, "steps": 3, "warmup_steps": 1, "lr": 0.001, "min_lr": 0.0001}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return make_base(tmp_path_factory.mktemp("gemma3") / "base", "gemma3_text")


@pytest.fixture(scope="module")
def imported(base, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """layout -> (config, run dir) of the base imported at that layout; at TP=1 a run that can
    train (demo corpora, the base's tokenizer)."""
    folder = tmp_path_factory.mktemp("gemma3-imports")
    runs = {}
    for layout, train in LAYOUTS.items():
        config = import_config(folder / layout, base, tokenizer="base" if layout == "tp1" else "demo",
                               **(TRAIN if layout == "tp1" else train))
        run_dir = folder / layout / "run"
        stages = [["corpora", "build"], ["tokenizer", "train"], ["import"]] if layout == "tp1" else [["import"]]
        for stage in stages:
            result = occi(*stage, str(config), "--run-dir", str(run_dir))
            assert result.returncode == 0, result.stderr[-3000:]
        assert "imported Gemma3ForCausalLM" in result.stdout
        runs[layout] = config, run_dir
    return runs


@pytest.mark.parametrize("layout", ["tp2", "pp2"])  # tp1: tests/test_import.py, for every family
def test_import_then_export_gives_back_transformers_logits(base, imported, layout):
    config, run_dir = imported[layout]
    result = occi("export", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    exported = json.loads((run_dir / "hf" / "config.json").read_text())
    original = json.loads((base / "config.json").read_text())
    assert exported["architectures"] == ["Gemma3ForCausalLM"] and exported["model_type"] == "gemma3_text"
    for key in ("layer_types", "rope_parameters", "query_pre_attn_scalar", "sliding_window", "hidden_activation"):
        assert exported[key] == original[key], key
    # what transformers 4 reads instead of the per-layer-type rope_parameters
    assert (exported["rope_theta"], exported["rope_local_base_freq"]) == (100000.0, 10000.0)
    assert exported["rope_scaling"] == {"rope_type": "linear", "factor": 4.0}
    expected, actual = logits(base, TOKENS), logits(run_dir / "hf", TOKENS)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()


def test_megatron_tp2_forward_equals_transformers(base, imported, tmp_path):
    """megatron's own forward at TP=2 with sequence parallelism (a mapping wrong the same way both
    ways passes a round trip, not this)."""
    config, run_dir = imported["tp2"]
    actual = megatron_forward(config, run_dir, 2, tmp_path)
    expected = logits(base, TOKENS)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()


def test_a_few_training_steps_from_the_import(imported, tmp_path):
    config, run_dir = imported["tp1"]
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)  # the export test of this layout reads the untrained import
    for stage in (["data", "prepare"], ["train"]):
        result = occi(*stage, str(config), "--run-dir", str(copy))
        assert result.returncode == 0, result.stderr[-3000:]
    steps = [json.loads(line) for line in (copy / "train" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in steps if r["kind"] == "train"]
    assert len(losses) == TRAIN["steps"] and all(np.isfinite(losses)), losses


def test_what_occi_cannot_express_is_one_line(tmp_path):
    from occi.errors import OcciError
    from occi.families import family

    gemma = family("gemma3_text", "test")
    config = json.loads(make_base(tmp_path / "base", "gemma3_text").joinpath("config.json").read_text())
    for change, message in [({"final_logit_softcapping": 30.0}, "final_logit_softcapping 30.0 is set"),
                            ({"attn_logit_softcapping": 50.0}, "attn_logit_softcapping 50.0 is set"),
                            ({"layer_types": ["sliding_attention", "full_attention", "full_attention",
                                              "sliding_attention"]}, "full attention every n-th layer"),
                            ({"hidden_activation": "silu"}, "hidden_activation 'silu'")]:
        with pytest.raises(OcciError, match=message) as err:
            gemma.model_fields({**config, **change}, "base/config.json")
        assert "\n" not in str(err.value) and str(err.value).startswith("base/config.json: ")
    base = tmp_path / "base"
    (base / "config.json").write_text(json.dumps({**config, "final_logit_softcapping": 30.0}))
    run_config = import_config(tmp_path, base)
    result = occi("import", str(run_config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "final_logit_softcapping" in result.stderr


# ------------------------------------------------------------------------------------------- GGUF

def test_gguf_runs_in_llama_cpp_with_transformers_logits(tmp_path):
    """llama.cpp's GEMMA3 graph fixes full attention every 6th layer, RoPE base 10k on the others and
    attention scaled by head_dim ** -0.5: a base with those (and its global RoPE linearly scaled)."""
    import gguf

    hf = tmp_path / "run" / "hf"
    _bpe_tokenizer(hf, LLAMA3_SPLIT, ["<|begin_of_text|>", "<|end_of_text|>"], "<|begin_of_text|>", "<|end_of_text|>")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf)
    tokenizer_files = {p.name: p.read_bytes() for p in hf.iterdir()}
    make_base(hf, "gemma3_text", vocab_size=(len(tokenizer) + 63) // 64 * 64, num_hidden_layers=6,
              layer_types=["sliding_attention"] * 5 + ["full_attention"], query_pre_attn_scalar=32,
              bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    for name, data in tokenizer_files.items():  # make_base saved its own tokenizer: put this one back
        (hf / name).write_bytes(data)
    config = write_config(tmp_path, ["de", "fr"])
    result = occi("export", str(config), "--run-dir", str(tmp_path / "run"), "--format", "gguf", "--quant", "f32")
    assert result.returncode == 0, result.stderr[-3000:]
    path = tmp_path / "run" / "gguf" / "occi-gguftest-f32.gguf"
    reader = gguf.GGUFReader(str(path))
    assert reader.fields["general.architecture"].contents() == "gemma3"
    assert reader.fields["gemma3.rope.scaling.type"].contents() == "linear"
    assert reader.fields["gemma3.attention.sliding_window"].contents() == 8
    from transformers import AutoModelForCausalLM

    norm = reader.get_tensor([t.name for t in reader.tensors].index("blk.0.post_attention_norm.weight")).data
    weight = AutoModelForCausalLM.from_pretrained(hf).model.layers[0].post_attention_layernorm.weight
    assert np.allclose(norm, 1 + weight.detach().numpy()), "llama.cpp multiplies by the weight: (1 + w) is written"
    if not have_module("llama_cpp") and not in_ci():
        return
    from occi.eval.llamacpp import LlamaCppLM

    prompt = tokenizer(demo_texts("pl")[0], add_special_tokens=False)["input_ids"][:48]
    actual = LlamaCppLM(str(path), f32_cache=True).logits(prompt)
    expected = hf_logits(hf, prompt)
    assert np.abs(actual - expected).max() < 0.05, np.abs(actual - expected).max()  # seen: 0.013
    assert (actual.argmax(-1) == expected.argmax(-1)).mean() > 0.9
    # ggml's CPU GELU looks its value up in a float16 table (GGML_GELU_FP16): with that rounding
    # in transformers too, the logits agree to float32 arithmetic, so the conversion itself is exact
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32)
    for layer in model.model.layers:
        layer.mlp.act_fn = Float16TableGelu()
    with torch.no_grad():
        rounded = model(torch.tensor([prompt])).logits[0].numpy()
    assert np.abs(actual - rounded).max() < 3e-3, np.abs(actual - rounded).max()  # seen: 1.5e-3


class Float16TableGelu(torch.nn.Module):
    """gelu_pytorch_tanh of the input rounded to float16, rounded to float16: ggml's table lookup."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(x.half().float(), approximate="tanh").half().float()


def test_gguf_of_a_layout_llama_cpp_fixes_otherwise_is_one_line(base, tmp_path):
    shutil.copytree(base, tmp_path / "run" / "hf")
    config = write_config(tmp_path, ["de", "fr"])
    result = occi("export", str(config), "--run-dir", str(tmp_path / "run"), "--format", "gguf", "--quant", "f32")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "llama.cpp's GEMMA3 graph fixes full attention every 6th layer" in result.stderr
