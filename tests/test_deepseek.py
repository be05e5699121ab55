"""DeepSeek-V3-style models from scratch: the moe-mla-tiny recipe (multi-head latent attention,
a dense first layer, sigmoid group-limited routing with the aux-loss-free expert bias, a shared
expert) trained at EP=2 on CPU with the bias logged per step, and exported exactly as
DeepseekV3ForCausalLM. Import of a DeepSeek-V3 base: tests/test_import.py (every family)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from conftest import PREPARED_LANGS, needs_module, occi
from occi import config as config_module
from occi.errors import OcciError
from test_moe import TOKENS, train_log

TRAIN = {"micro_batch_size": 2, "global_batch_size": 4, "steps": 4, "warmup_steps": 1, "lr": 0.003,
         "min_lr": 0.0003, "eval_interval": 4, "save_interval": 4, "log_interval": 1, "eval_samples": 2,
         "expert_parallel": 2, "data_parallel": 2}


def write_config(folder: Path) -> Path:
    config = {"name": "mla", "languages": PREPARED_LANGS, "corpora": {"recipe": "demo", "workers": 1},
              "tokenizer": {"recipe": "demo", "vocab_size": 600}, "model": {"recipe": "moe-mla-tiny", "seq_length": 32},
              "train": TRAIN}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.yaml").write_text(yaml.safe_dump(config))
    return folder / "run.yaml"


@pytest.fixture(scope="module")
def run(shared_prepared, tmp_path_factory) -> tuple[Path, Path]:
    """(config, run folder) of moe-mla-tiny trained 4 steps at EP=2 x DP=2, on the session's
    prepared run (tests/conftest.py: this module's corpora and tokenizer sections)."""
    folder = tmp_path_factory.mktemp("mla")
    config, run_dir = write_config(folder), folder / "run"
    shutil.copytree(shared_prepared, run_dir, ignore=shutil.ignore_patterns("config.yaml"))
    result = occi("train", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert " expert bias ±" in result.stdout
    return config, run_dir


def test_the_expert_bias_moves_against_the_load_every_step(run):
    """megatron updates each router's bias by rate x sign(mean load - expert load) after every step:
    the logged bias changes by exactly that, and the overloaded expert's goes down."""
    records = train_log(run[1])
    assert list(records) == [1, 2, 3, 4]
    rate = config_module.load(str(run[0])).model.moe_bias_update_rate
    previous = [[0.0] * 4, [0.0] * 4]  # two mixture layers (layer 0 is dense), four experts each
    for step, record in records.items():
        assert [sum(row) for row in record["expert_tokens"]] == [0, 2 * 4 * 32, 2 * 4 * 32]
        for layer, (bias, before) in enumerate(zip(record["expert_bias"], previous)):
            load = record["expert_tokens"][layer + 1]
            mean = sum(load) / len(load)
            expected = [b + rate * ((mean > n) - (mean < n)) for b, n in zip(before, load)]
            assert bias == pytest.approx(expected, abs=1e-5), (step, layer)
        previous = record["expert_bias"]
    assert any(v != 0 for row in previous for v in row)
    assert all(record["aux_loss"] is None for record in records.values())


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory) -> tuple[Path, Path]:
    """(config, a copy of the trained run) after `occi export`."""
    config, source = run
    run_dir = tmp_path_factory.mktemp("mla-export") / "run"
    shutil.copytree(source, run_dir)
    result = occi("export", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return config, run_dir


def test_export_is_deepseek_v3_and_gives_megatrons_logits(exported):
    from transformers import AutoModelForCausalLM

    from occi.train.export import megatron_logits

    config, run_dir = exported
    exported = json.loads((run_dir / "hf" / "config.json").read_text())
    assert exported["architectures"] == ["DeepseekV3ForCausalLM"]
    assert (exported["n_group"], exported["topk_group"], exported["first_k_dense_replace"]) == (2, 1, 1)
    model = AutoModelForCausalLM.from_pretrained(run_dir / "hf", attn_implementation="eager")
    bias = model.model.layers[1].mlp.gate.e_score_correction_bias
    assert bias.abs().sum() > 0, "the trained routing bias is exported"
    with torch.no_grad():
        actual = model(TOKENS).logits
    expected = megatron_logits(config_module.load(str(config)), run_dir, TOKENS)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()


def test_the_gguf_of_the_export_holds_llama_cpps_deepseek2_layout(exported, tmp_path):
    """kv_b_proj as per-head k_b / v_b (the latent-space form llama.cpp's DEEPSEEK2 graph reads),
    the routing bias, the dense first layer and the routing keys."""
    import gguf

    from gguf_checks import write_f32

    hf = exported[1] / "hf"
    config = json.loads((hf / "config.json").read_text())
    reader = gguf.GGUFReader(str(write_f32(hf, tmp_path / "mla-f32.gguf")))
    value = lambda key: reader.fields[key].contents()  # noqa: E731
    assert value("general.architecture") == "deepseek2"
    kv, rope, nope = config["kv_lora_rank"], config["qk_rope_head_dim"], config["qk_nope_head_dim"]
    expected = {"attention.head_count_kv": 1, "attention.key_length": kv + rope, "attention.value_length": kv,
                "attention.key_length_mla": nope + rope, "attention.value_length_mla": config["v_head_dim"],
                "attention.kv_lora_rank": kv, "rope.dimension_count": rope, "leading_dense_block_count": 1,
                "expert_count": 4, "expert_used_count": 2, "expert_shared_count": 1, "expert_group_count": 2,
                "expert_group_used_count": 1, "expert_gating_func": int(gguf.ExpertGatingFuncType.SIGMOID),
                "expert_weights_norm": True, "expert_weights_scale": pytest.approx(config["routed_scaling_factor"])}
    assert {key: value(f"deepseek2.{key}") for key in expected} == expected
    tensors = {t.name: [int(n) for n in t.shape] for t in reader.tensors}
    heads = config["num_attention_heads"]
    # gguf-py lists dimensions innermost first: k_b is [heads, latent, nope], v_b [heads, value, latent]
    assert tensors["blk.1.attn_k_b.weight"] == [nope, kv, heads]
    assert tensors["blk.1.attn_v_b.weight"] == [kv, config["v_head_dim"], heads]
    assert tensors["blk.1.exp_probs_b.bias"] == [4] and "blk.0.ffn_gate.weight" in tensors
    assert not any("kv_b" in name or name.startswith("blk.0.ffn_gate_exps") for name in tensors)


@needs_module("llama_cpp", "llama-cpp-python")
def test_llama_cpp_runs_the_gguf_of_the_export_as_transformers(exported, tmp_path):
    """The trained (routing bias moved) moe-mla-tiny export: llama.cpp's logits within 1e-4 of
    transformers' (f32 throughout), its greedy tokens the same."""
    import numpy as np

    from gguf_checks import llama_cpp_run, transformers_run, write_f32

    hf = exported[1] / "hf"
    logits, greedy = llama_cpp_run(write_f32(hf, tmp_path / "mla-f32.gguf"))
    expected, generated = transformers_run(hf)
    assert np.abs(logits - expected).max() < 1e-4, np.abs(logits - expected).max()
    assert greedy == generated[: len(greedy)] and len(greedy) >= 8, (greedy, generated)


V3_YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "beta_fast": 32.0,
           "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0, "rope_theta": 10000.0}
"""DeepSeek-V3's own YaRN form (factor 40 and original context 4096 there), scaled to the tiny model."""


@needs_module("llama_cpp", "llama-cpp-python")
def test_llama_cpp_runs_deepseek_v3s_yarn_as_transformers(tmp_path):
    """YaRN as DeepSeek-V3 has it: the rope.scaling keys and mscale_all_dim as llama.cpp's
    yarn_log_multiplier (the softmax scale's mscale squared): f32 logits within 1e-4 on 100 tokens,
    past the original context of 64, and the same greedy tokens."""
    import gguf
    import numpy as np

    from gguf_checks import llama_cpp_run, transformers_run, write_f32
    from hf_bases import make_base

    base = make_base(tmp_path / "base", "deepseek_v3", seed=7, rope_parameters=dict(V3_YARN))
    path = write_f32(base, tmp_path / "yarn-f32.gguf")
    fields = gguf.GGUFReader(str(path)).fields
    assert fields["deepseek2.rope.scaling.type"].contents() == "yarn"
    assert fields["deepseek2.rope.scaling.yarn_log_multiplier"].contents() == pytest.approx(0.1)
    assert fields["deepseek2.rope.scaling.original_context_length"].contents() == 64
    logits, greedy = llama_cpp_run(path)
    expected, generated = transformers_run(base)
    assert np.abs(logits - expected).max() < 1e-4, np.abs(logits - expected).max()
    assert greedy == generated[: len(greedy)] and len(greedy) >= 8, (greedy, generated)


@pytest.mark.parametrize("change,message", [
    ({"n_shared_experts": 0}, "n_shared_experts 0 cannot be written as GGUF"),
    ({"rope_interleave": False}, "rope_interleave false cannot be written"),
    ({"rope_parameters": {**V3_YARN, "mscale_all_dim": 0.8}}, "mscale 1.0 and mscale_all_dim 0.8 cannot be written"),
])
def test_gguf_refuses_what_llama_cpps_deepseek2_graph_fixes_otherwise(exported, tmp_path, change, message):
    from gguf_checks import write_f32

    folder = tmp_path / "hf"
    shutil.copytree(exported[1] / "hf", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(OcciError, match=message) as err:
        write_f32(folder, tmp_path / "refused.gguf")
    assert "\n" not in str(err.value) and str(err.value).startswith(str(folder / "config.json"))


@pytest.mark.parametrize("change,message", [
    ({"rope_parameters": {"rope_type": "yarn", "factor": 40.0, "rope_theta": 10000.0}},
     "RoPE scaling 'yarn' without original_max_position_embeddings"),
    ({"rope_parameters": {"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 64,
                          "truncate": False, "rope_theta": 10000.0}}, "'yarn' with truncate false"),
    ({"rope_parameters": {"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 64,
                          "mscale_all_dim": 1.0, "rope_theta": 10000.0}}, "set both or neither"),
    ({"n_group": 2, "topk_group": 2, "num_experts_per_tok": 2}, "num_experts_per_tok 2 / topk_group 2 is not 2"),
    ({"rope_interleave": False}, "rope_interleave false"),
    ({"norm_topk_prob": False}, "norm_topk_prob false"),
])
def test_what_megatron_core_cannot_express_is_one_line(change, message):
    from hf_bases import config_for
    from occi.families import model_config

    config = {**config_for("deepseek_v3").to_dict(), **change}
    with pytest.raises(OcciError) as caught:
        model_config(config, None, "base/config.json")
    assert str(caught.value).startswith("base/config.json: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_cluster_recipe_renders_its_slurm_resources_and_fits_its_gpus(tmp_path):
    """moe-mla-16b-a2b-eu: 32 GPUs on 8 nodes of leonardo-booster, ~15.5B total / ~2.5B active
    parameters, and `occi plan`'s peak memory per GPU (latent attention counted: tests/test_memory.py)
    fits the 64 GiB A100s."""
    from conftest import REPO
    from occi.slurm.render import render
    from occi.slurm.submit import load_profile, nodes_for, plan
    from occi.train import memory

    raw = yaml.safe_load((REPO / "configs" / "moe-mla-16b-a2b-eu.yaml").read_text())
    raw["corpora"] = "demo"  # the real recipe's shard count asks the hub; the training resources do not
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    cfg = config_module.load(str(tmp_path / "run.yaml"))
    profile, _ = load_profile("leonardo-booster")
    step = next(s for s in plan(cfg, tmp_path / "run", profile) if s.name == "train")
    script = render(step, cfg, profile, tmp_path / "run", Path(cfg.source_file), nodes_for(cfg, profile), tmp_path)
    assert "#SBATCH --nodes=8" in script and "#SBATCH --gres=gpu:4" in script
    model = cfg.model
    assert (model.parameters(64000), model.parameters(64000, active=True)) == pytest.approx((15.55e9, 2.50e9), rel=0.01)
    peak = memory.peak(memory.estimate(model, 64000, memory.Layout.of(cfg.train, model)))
    assert peak.total / 2**30 == pytest.approx(40.6, abs=0.1)
    assert memory.fits(peak.total, 64)


def test_queries_without_a_latent_map_to_megatrons_direct_query_projection(tmp_path):
    """q_lora_rank null (DeepSeek-V2-Lite, Moonlight): q_proj is megatron's linear_q_proj; the
    mapping names exactly what transformers writes (the latent case: tests/test_families.py)."""
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from hf_bases import config_for
    from occi.families import family, model_config

    AutoModelForCausalLM.from_config(config_for("deepseek_v3", q_lora_rank=None)).save_pretrained(str(tmp_path))
    with safe_open(str(next(tmp_path.glob("*.safetensors"))), framework="pt") as handle:
        on_disk = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    model = model_config(json.loads((tmp_path / "config.json").read_text()), None, "test")
    assert model.mla_q_lora_rank is None
    assert family("deepseek_v3", "test").hf_shapes(model) == on_disk
    assert on_disk["model.layers.0.self_attn.q_proj.weight"] == (4 * 16, 64)
