"""`occi import` of a tiny random Hugging Face base of every registered family (occi/families/;
the bases: tests/hf_bases.py BUILDERS) and its export.

Exactness is checked against transformers itself: the export of an untrained import gives the
base's logits (fp32, 1e-4) from imports at TP=1, TP=2 and PP=2, and megatron's own forward pass
gives them too (in this process at TP=1, tests/megatron_forward.py under torchrun at TP=2 / PP=2):
a round trip alone would not catch a mapping wrong the same way both ways (gate and up swapped).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, occi, transformers4_view
from hf_bases import logits, make_base, save_tokenizer
from occi.families import families

KINDS = list(families())
LAYOUTS = {"tp1": {}, "tp2": {"tensor_parallel": 2}, "pp2": {"pipeline_parallel": 2}}
TOKENS = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(0))


class _Bases(dict):
    """Tiny random bases by family, each made when a test first needs it."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def __missing__(self, kind: str) -> Path:
        self[kind] = make_base(self.folder / kind, kind, seed=KINDS.index(kind))
        return self[kind]


@pytest.fixture(scope="session")
def bases(tmp_path_factory) -> dict[str, Path]:
    return _Bases(tmp_path_factory.mktemp("bases"))


def import_config(folder: Path, base: Path, name: str = "run.yaml", tokenizer="demo", **train) -> Path:
    config = {"name": "cpt", "languages": ["en", "de"], "corpora": "demo", "tokenizer": tokenizer,
              "model": {"base": str(base), "seq_length": 32},
              "train": {"micro_batch_size": 2, "global_batch_size": 4, "steps": 4, "warmup_steps": 1, **train}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(yaml.safe_dump(config))
    return folder / name


def megatron_forward(config: Path, run_dir: Path, processes: int, tmp_path: Path) -> torch.Tensor:
    torch.save(TOKENS, tmp_path / "tokens.pt")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               str(REPO / "tests" / "megatron_forward.py"), str(config), str(run_dir), str(tmp_path / "tokens.pt"),
               str(tmp_path / "logits.pt")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=os.environ)
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(tmp_path / "logits.pt")


# every family at TP=1 here; TP=2 and PP=2 on a few of them in tests/test_import_layouts.py (a file
# of its own, so that pytest-xdist's --dist loadfile runs the two halves on both workers), so that
# between them the layouts meet RoPE scaling (llama), biases (qwen2), latent attention and grouped
# sigmoid routing split over ranks (deepseek_v3), the sliding window (mistral), q/k norm (qwen3),
# Apertus' xIELU (its scalars act on each rank's slice of the MLP) and gpt-oss' sinks, sliding/full
# layers, YaRN and biased experts; experts at TP=2: tests/test_moe.py
CASES = [(kind, "tp1") for kind in KINDS]
LAYOUT_CASES = [("llama", "tp2"), ("qwen2", "tp2"), ("deepseek_v3", "tp2"), ("mistral", "pp2"), ("qwen3", "pp2"),
                ("apertus", "tp2"), ("apertus", "pp2"), ("gpt_oss", "tp2"), ("gpt_oss", "pp2")]


@pytest.mark.parametrize("kind,layout", CASES)
def test_import_then_export_gives_back_the_base(bases, kind, layout, tmp_path):
    check_import_then_export(bases, kind, layout, tmp_path)


def check_import_then_export(bases, kind: str, layout: str, tmp_path: Path) -> None:
    """Import at the layout, megatron's forward and the export's logits against transformers'."""
    config = import_config(tmp_path, bases[kind], **LAYOUTS[layout])
    run_dir = tmp_path / "run"
    result = occi("import", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"imported {families()[kind].hf_class}" in result.stdout
    assert (run_dir / "checkpoints" / "latest").read_text() == "0\n"
    assert (run_dir / "checkpoints" / "latest_checkpointed_iteration.txt").read_text() == "0\n"
    expected = logits(bases[kind], TOKENS)
    if layout == "tp1":  # megatron itself, in this process (one rank), against transformers
        from occi import config as config_module
        from occi.train.export import megatron_logits

        actual = megatron_logits(config_module.load(str(config)), run_dir, TOKENS)
    else:  # megatron itself, at the import's layout, against transformers
        actual = megatron_forward(config, run_dir, 2, tmp_path)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()
    result = occi("export", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    exported = json.loads((run_dir / "hf" / "config.json").read_text())
    assert exported["architectures"] == [families()[kind].hf_class]
    rope = json.loads((bases[kind] / "config.json").read_text())["rope_parameters"]
    assert exported["rope_theta"] == rope.get("full_attention", rope)["rope_theta"]  # Gemma 3: per layer type
    actual = logits(run_dir / "hf", TOKENS)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()


DEEPSEEK_YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8, "beta_fast": 32.0,
                 "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 0.8, "rope_theta": 10000.0}
"""DeepSeek-V3's YaRN form (its own: factor 40, original context 4096, mscale and mscale_all_dim 1),
with an mscale_all_dim other than mscale so that both the rotary part's attention factor and the
softmax scale move."""


@pytest.mark.parametrize("kind,scaling", [("llama", {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}),
                                          ("deepseek_v3", DEEPSEEK_YARN)])
def test_rope_scaling_is_imported_exactly(kind, scaling, tmp_path):
    """Linear RoPE scaling is megatron-core's seq_len_interpolation_factor, DeepSeek-V3's YaRN its
    latent attention's YaRN (rope_type yarn, mscale, mscale_all_dim): megatron's own forward pass
    (not only the round trip, which keeps the base's config.json) gives transformers' logits."""
    base = make_base(tmp_path / "base", kind, seed=7, rope_parameters=dict(scaling))
    config = import_config(tmp_path, base, tokenizer="base")
    run_dir = tmp_path / "run"
    result = occi("import", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    expected = logits(base, TOKENS)
    actual = megatron_forward(config, run_dir, 1, tmp_path)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()
    result = occi("export", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    exported = json.loads((run_dir / "hf" / "config.json").read_text())["rope_parameters"]
    assert exported == json.loads((base / "config.json").read_text())["rope_parameters"]
    assert {key: exported[key] for key in scaling} == scaling
    actual = logits(run_dir / "hf", TOKENS)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()


@pytest.mark.parametrize("scaling", [{}, {"rope_scaling_factor": 8.0}, {"rope_linear_factor": 4.0}])
def test_a_recipes_export_rotates_as_megatron_does(scaling):
    """Without a base, the export's config.json carries the recipe's RoPE scaling: transformers'
    rotary angles (cos and sin at 20k positions, past Llama 3.1's original 8192) equal megatron-core's."""
    from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    from occi.families import family
    from occi.train.config import ModelConfig
    from occi.train.export import hf_config

    model = ModelConfig(num_layers=1, hidden_size=64, ffn_hidden_size=96, num_attention_heads=2, num_query_groups=2,
                        seq_length=32, rotary_base=10000, **scaling)
    config = hf_config(family("llama", "test"), model, None, 320, {"bos": 0, "eos": 1}, torch.float32)
    positions = torch.arange(20_000)
    cos, sin = LlamaRotaryEmbedding(config)(torch.zeros(1, 1, dtype=torch.float32), positions[None])
    megatron = RotaryEmbedding(kv_channels=32, rotary_percent=1.0, rotary_base=model.rotary_base,
                               rope_scaling=model.rope_scaling_factor is not None,
                               rope_scaling_factor=model.rope_scaling_factor or 8.0,
                               seq_len_interpolation_factor=model.rope_linear_factor, use_cpu_initialization=True)
    angles = megatron.get_freqs_non_repeated(len(positions)).repeat(1, 2)  # get_emb's layout, without its move to CUDA
    assert torch.allclose(cos[0], angles.cos(), atol=1e-3) and torch.allclose(sin[0], angles.sin(), atol=1e-3)
    with pytest.raises(ValueError, match="two RoPE scalings"):
        ModelConfig(num_layers=1, hidden_size=64, ffn_hidden_size=96, num_attention_heads=2, num_query_groups=2,
                    seq_length=32, rope_scaling_factor=8.0, rope_linear_factor=4.0)


def _broken(bases: dict, tmp_path: Path, kind: str = "qwen2") -> Path:
    copy = tmp_path / "broken"
    shutil.copytree(bases[kind], copy)
    return copy


def _fails_cleanly(config: Path, run_dir: Path, message: str) -> None:
    result = occi("import", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("occi: error: ") and message in lines[0], result.stderr
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "base").exists()


def test_unsupported_architecture_missing_shard_and_vocabulary_mismatch(bases, tmp_path):
    base = _broken(bases, tmp_path)
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    _fails_cleanly(import_config(tmp_path / "a", base), tmp_path / "a" / "run",
                   "architecture 'GPT2LMHeadModel' (model_type 'gpt2') is not supported; supported: "
                   + ", ".join(f.hf_class for f in families().values()))

    (base / "config.json").write_text(json.dumps({**config, "rope_parameters": {
        "rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0}}))
    _fails_cleanly(import_config(tmp_path / "b", base), tmp_path / "b" / "run",
                   "RoPE scaling 'yarn' is not supported: megatron-core 0.16's GPTModel drops the YaRN attention "
                   "factor (1.139 here)")
    (base / "config.json").write_text(json.dumps({**config, "rope_parameters": {
        "rope_type": "dynamic", "factor": 4.0, "rope_theta": 10000.0}}))
    _fails_cleanly(import_config(tmp_path / "b2", base), tmp_path / "b2" / "run", "RoPE scaling 'dynamic' is not supported")

    (base / "config.json").write_text(json.dumps({**config, "vocab_size": 256}))
    _fails_cleanly(import_config(tmp_path / "c", base), tmp_path / "c" / "run",
                   "config.json says [256, 64] (vocab_size, hidden_size)")

    (base / "config.json").write_text(json.dumps(config))
    save_tokenizer(base, vocab=400)
    _fails_cleanly(import_config(tmp_path / "d", base), tmp_path / "d" / "run",
                   "the tokenizer uses ids up to 399 but config.json's vocab_size is 320")

    shutil.copy2(bases["qwen2"] / "tokenizer.json", base / "tokenizer.json")
    shard = sorted(base.glob("model-*.safetensors"))[1]
    shard.unlink()
    _fails_cleanly(import_config(tmp_path / "e", base), tmp_path / "e" / "run",
                   f"shard {shard.name} named in the safetensors index is missing")

    _fails_cleanly(import_config(tmp_path / "f", tmp_path / "nowhere" / "model"), tmp_path / "f" / "run",
                   "not a folder, and the hub snapshot failed")


def _rewrite_shard(base: Path, name: str, change) -> Path:
    """Applies `change` to the tensors of the shard that holds `name` (as its index says)."""
    from safetensors.torch import load_file, save_file

    shard = base / json.loads((base / "model.safetensors.index.json").read_text())["weight_map"][name]
    tensors = load_file(shard)
    change(tensors)
    save_file(tensors, shard, metadata={"format": "pt"})
    return shard


def test_a_wrong_shape_an_absent_tensor_and_nan_are_one_line_before_any_rank(bases, tmp_path):
    base = _broken(bases, tmp_path)  # qwen2: 4 heads of 16, 2 key/value groups, hidden 64, MLP 96
    k_proj = "model.layers.1.self_attn.k_proj.weight"
    shard = _rewrite_shard(base, k_proj, lambda t: t.update({k_proj: t[k_proj][:16].clone()}))
    _fails_cleanly(import_config(tmp_path / "a", base), tmp_path / "a" / "run",
                   f"{shard}: tensor {k_proj} has shape [16, 64], expected [32, 64] from config.json")

    shutil.rmtree(base)
    base = _broken(bases, tmp_path)
    up = "model.layers.2.mlp.up_proj.weight"
    shard = _rewrite_shard(base, up, lambda t: t.pop(up))
    _fails_cleanly(import_config(tmp_path / "b", base), tmp_path / "b" / "run",
                   f"{shard}: tensor {up} is not in this file, though model.safetensors.index.json places it here "
                   "(expected shape [96, 64])")

    shutil.rmtree(base)
    base = _broken(bases, tmp_path)
    down = "model.layers.3.mlp.down_proj.weight"

    def poison(tensors):
        tensors[down][5, 7] = float("nan")
        tensors[down][0, :2] = float("inf")

    shard = _rewrite_shard(base, down, poison)
    _fails_cleanly(import_config(tmp_path / "c", base), tmp_path / "c" / "run",
                   f"{shard}: tensor {down} holds 1 NaN and 2 infinite value(s) of 6,144;")


def test_multi_query_attention_imports_at_tp1_and_tp2_says_why_not(tmp_path):
    base = make_base(tmp_path / "mqa", "qwen2", num_key_value_heads=1)
    config = import_config(tmp_path / "tp1", base)
    for command in ("import", "export"):
        result = occi(command, str(config), "--run-dir", str(tmp_path / "tp1" / "run"))
        assert result.returncode == 0, result.stderr[-3000:]
    actual, expected = logits(tmp_path / "tp1" / "run" / "hf", TOKENS), logits(base, TOKENS)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()
    _fails_cleanly(import_config(tmp_path / "tp2", base, tensor_parallel=2), tmp_path / "tp2" / "run",
                   "train.tensor_parallel 2 does not divide the base's num_query_groups (1)")


def test_base_config_cannot_repeat_the_architecture(bases, tmp_path):
    config = yaml.safe_load(import_config(tmp_path, bases["llama"]).read_text())
    config["model"]["num_layers"] = 4
    (tmp_path / "twice.yaml").write_text(yaml.safe_dump(config))
    result = occi("import", str(tmp_path / "twice.yaml"), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "model.num_layers: unknown key" in result.stderr


def test_export_of_a_base_loads_in_transformers_4_and_5(bases, tmp_path, transformers4):
    from transformers import AutoTokenizer

    assert json.loads((bases["llama"] / "tokenizer_config.json").read_text())["tokenizer_class"] == "TokenizersBackend"
    config = import_config(tmp_path, bases["llama"])
    run_dir = tmp_path / "run"
    for command in ("import", "export"):
        result = occi(command, str(config), "--run-dir", str(run_dir))
        assert result.returncode == 0, result.stderr[-3000:]
    texts = ["The market opens on Saturday.", "Der Markt öffnet am Samstag, 42 Stände."]
    seen = transformers4_view(transformers4, run_dir / "hf", texts)
    assert seen["class"] == "PreTrainedTokenizerFast"
    assert seen["ids"] == [AutoTokenizer.from_pretrained(bases["llama"])(t)["input_ids"] for t in texts]
    assert seen["rope_theta"] == 500000.0 and seen["rope_scaling"]["rope_type"] == "llama3"
    assert seen["rope_scaling"]["factor"] == 8.0


def test_a_hub_id_resolves_through_huggingface_hub_from_its_cache(bases, tmp_path):
    """The cluster path: a hub id downloaded on the login node (`occi fetch` / huggingface-cli) and
    imported in a job with HF_HUB_OFFLINE=1 goes through snapshot_download, here from a cache laid
    out as huggingface_hub lays it out."""
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--occi-test--tiny-qwen3"
    shutil.copytree(bases["qwen3"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    config = import_config(tmp_path, bases["qwen3"])
    raw = yaml.safe_load(config.read_text())
    raw["model"]["base"] = "occi-test/tiny-qwen3"
    config.write_text(yaml.safe_dump(raw))
    run_dir = tmp_path / "run"
    result = occi("import", str(config), "--run-dir", str(run_dir),
                  env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr[-3000:]
    source = json.loads((run_dir / "base" / "source.json").read_text())
    assert source["base"] == "occi-test/tiny-qwen3"
    assert Path(source["folder"]) == repo / "snapshots" / commit
    assert source["architecture"] == "Qwen3ForCausalLM"


def test_the_value_check_finds_nan_and_infinity_past_the_first_slice_of_a_mapped_shard(tmp_path):
    from safetensors.torch import save_file

    from occi.errors import OcciError
    from occi.train import hf_weights

    chunk = hf_weights.VALUE_CHUNK
    big = torch.zeros(2 * chunk + 5, dtype=torch.bfloat16)
    big[chunk + 3], big[-1], big[-2] = float("nan"), float("inf"), float("-inf")
    eight = torch.zeros(8, dtype=torch.float8_e4m3fn)
    eight[5] = float("nan")
    save_file({"a.clean": torch.ones(3, 7), "b.ids": torch.arange(9, dtype=torch.uint8), "c.big": big,
               "d.eight": eight, "e.empty": torch.zeros(0, 4)}, str(tmp_path / "model.safetensors"))
    weights = {name: "model.safetensors" for name in ("a.clean", "b.ids", "c.big", "d.eight", "e.empty")}
    hf_weights.check_values(tmp_path, weights, ["a.clean", "b.ids", "e.empty"])
    with pytest.raises(OcciError, match=r"tensor c.big holds 1 NaN and 2 infinite value\(s\) of 8,388,613 "
                                         r"\(and 1 more tensor\(s\)\)"):
        hf_weights.check_values(tmp_path, weights, list(weights))
    with pytest.raises(OcciError, match=r"tensor d.eight holds 1 NaN and 0 infinite value\(s\) of 8;"):
        hf_weights.check_values(tmp_path, weights, ["a.clean", "d.eight"])
