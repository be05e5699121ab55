"""Mixture-of-experts models: layout checks, megatron-core MoE training on CPU at EP=1 and EP=2
(gloo, the all-gather token dispatcher), resuming across expert-parallel sizes, exact export to
Mixtral, and import of tiny random Mixtral-, Qwen3-MoE- and Qwen2-MoE-style bases.

One module fixture trains moe-tiny (at sequence length 32) on the session's prepared data
(tests/conftest.py) once at EP=1 and once at EP=2; the other checks reuse those two runs. A second one trains the first 4 of those
8 steps at EP=2 with TP=2 and with PP=2 (four ranks each) on the same data.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from conftest import PREPARED_LANGS, occi
from hf_bases import logits, make_base
from occi import config as config_module
from occi.rundir import RunDir

LANGS = PREPARED_LANGS
TRAIN = {"micro_batch_size": 2, "global_batch_size": 4, "steps": 8, "warmup_steps": 2, "lr": 0.003,
         "min_lr": 0.0003, "eval_interval": 4, "save_interval": 4, "log_interval": 1, "eval_samples": 2}
MODEL = {"recipe": "moe-tiny", "seq_length": 32}
EP = {"ep1": {}, "ep2": {"expert_parallel": 2, "data_parallel": 2}}
TOKENS = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(0))


def write_config(folder: Path, name: str = "run.yaml", model: dict | None = None, **train) -> Path:
    config = {"name": "moe", "languages": LANGS, "corpora": {"recipe": "demo", "workers": 1},
              "tokenizer": {"recipe": "demo", "vocab_size": 600}, "model": {**MODEL, **(model or {})},
              "train": {**TRAIN, **train}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(yaml.safe_dump(config))
    return folder / name


def train_log(run_dir: Path) -> dict[int, dict]:
    """step -> the last training record written for it."""
    records = {}
    for line in (run_dir / "train" / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "train":
            records[record["step"]] = record
    return records


def fresh_copy(prepared: Path, run_dir: Path) -> Path:
    shutil.copytree(prepared, run_dir, ignore=shutil.ignore_patterns("checkpoints", "train", "hf", "config.yaml"))
    return run_dir


@pytest.fixture(scope="module")
def runs(shared_prepared, tmp_path_factory) -> dict[str, Path]:
    """moe-tiny trained 8 steps at EP=1 (one rank) and at EP=2 (two ranks, DP=2), from the same data:
    the session's prepared run (tests/conftest.py: this module's corpora and tokenizer sections)."""
    folder = tmp_path_factory.mktemp("moe")
    prepared = fresh_copy(shared_prepared, folder / "prepared")
    out = {"prepared": prepared}
    for name, parallel in EP.items():
        run_dir = fresh_copy(prepared, folder / name)
        result = occi("train", str(write_config(folder / f"{name}-config", **parallel)), "--run-dir", str(run_dir))
        assert result.returncode == 0, result.stderr[-3000:]
        assert "train: step 8/8 (complete)" in result.stdout
        assert " aux " in result.stdout and " expert share " in result.stdout
        out[name] = run_dir
    return out


def test_ep1_and_ep2_train_the_same_decreasing_curve(runs):
    ep1, ep2 = train_log(runs["ep1"]), train_log(runs["ep2"])
    assert list(ep1) == list(range(1, 9)) and list(ep2) == list(range(1, 9))
    assert [ep2[s]["loss"] for s in ep1] == pytest.approx([ep1[s]["loss"] for s in ep1], abs=1e-4)
    assert ep1[8]["loss"] < ep1[1]["loss"] - 0.15, "the loss decreases"
    assert [ep2[s]["aux_loss"] for s in ep1] == pytest.approx([ep1[s]["aux_loss"] for s in ep1], abs=1e-4)


def test_per_step_load_balancing_logs_tensorboard_and_expert_load_png(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for name in EP:
        for record in train_log(runs[name]).values():
            assert record["aux_loss"] > 0
            assert len(record["share_min"]) == len(record["share_max"]) == 2  # both layers are mixtures
            assert all(0 <= low <= 0.25 <= high <= 1 for low, high in zip(record["share_min"], record["share_max"]))
            # every token goes to top-2 of 4 experts: 2 x tokens of the step (4 sequences x 32) per layer
            assert [sum(row) for row in record["expert_tokens"]] == [2 * 4 * 32] * 2
    events = EventAccumulator(str(runs["ep2"] / "train" / "tensorboard")).Reload()
    tags = events.Tags()["scalars"]
    assert {"moe/load_balancing_loss", "moe/expert_share_min/moe_layer_1", "moe/expert_share_max/moe_layer_0"} <= set(tags)
    summary = json.loads((runs["ep2"] / "train" / "summary.json").read_text())
    assert summary["active_parameters"] < summary["parameters"]
    png = runs["ep2"] / summary["expert_load_plot"]
    assert png == RunDir(runs["ep2"]).expert_load_plot and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("source", list(EP))
def test_export_to_mixtral_is_exact_and_generates(runs, source, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from occi.train.export import megatron_logits

    run_dir = tmp_path / "run"
    shutil.copytree(runs[source], run_dir)
    config = write_config(tmp_path, **EP[source])
    result = occi("export", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    exported = json.loads((run_dir / "hf" / "config.json").read_text())
    assert exported["architectures"] == ["MixtralForCausalLM"]
    assert (exported["num_local_experts"], exported["num_experts_per_tok"], exported["intermediate_size"]) == (4, 2, 64)
    expected = megatron_logits(config_module.load(str(config)), run_dir, TOKENS)
    model = AutoModelForCausalLM.from_pretrained(run_dir / "hf")
    with torch.no_grad():
        actual = model(TOKENS).logits
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "hf")
    inputs = tokenizer("Le marché du samedi", return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]


@pytest.mark.parametrize("start,finish", [("ep2", "ep1"), ("ep1", "ep2")])
def test_a_checkpoint_resumes_at_the_other_expert_parallel_size(runs, start, finish, tmp_path):
    """The step-4 checkpoint of one EP size, continued at the other, gives the uninterrupted curve."""
    from occi.train import checkpoints

    run_dir = tmp_path / "run"
    shutil.copytree(runs[start], run_dir)
    shutil.rmtree(checkpoints.checkpoint_dir(run_dir, 8))
    checkpoints.publish_latest(run_dir, 4)  # as after a crash between steps 4 and 8
    (run_dir / "train" / "_DONE").unlink()
    (run_dir / "config.yaml").unlink()  # the new launch freezes its own layout
    result = occi("train", str(write_config(tmp_path, **EP[finish])), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from step 4" in result.stdout
    resumed, reference = train_log(run_dir), train_log(runs[finish])
    assert [resumed[s]["loss"] for s in range(5, 9)] == pytest.approx([reference[s]["loss"] for s in range(5, 9)],
                                                                       abs=1e-4)


# ---------------------------------------------------------------- expert parallelism with TP and PP

WIDE = {"ep2tp2": {"expert_parallel": 2, "tensor_parallel": 2, "data_parallel": 2},
        "ep2pp2": {"expert_parallel": 2, "pipeline_parallel": 2, "data_parallel": 2}}


@pytest.fixture(scope="module")
def wide_runs(runs) -> dict[str, Path]:
    """The first 4 steps of the EP=1 run's schedule at EP=2 x TP=2 and EP=2 x PP=2 (world 4, DP=2)."""
    folder = runs["prepared"].parent
    out = {}
    for name, parallel in WIDE.items():
        run_dir = fresh_copy(runs["prepared"], folder / name)
        config = write_config(folder / f"{name}-config", stop_after_steps=4, **parallel)
        result = occi("train", str(config), "--run-dir", str(run_dir))
        assert result.returncode == 0, result.stderr[-3000:]
        out[name] = run_dir
    return out


@pytest.mark.parametrize("name", list(WIDE))
def test_expert_parallel_with_tensor_or_pipeline_parallel_trains_the_ep1_curve(runs, wide_runs, name):
    """Sequence parallelism (on for experts at TP > 1) routes each tensor-parallel rank's slice of
    the sequence: the expert counts still add up to every token once per chosen expert."""
    ep1, wide = train_log(runs["ep1"]), train_log(wide_runs[name])
    assert list(wide) == [1, 2, 3, 4]
    assert [wide[s]["loss"] for s in wide] == pytest.approx([ep1[s]["loss"] for s in wide], abs=1e-4)
    assert [wide[s]["aux_loss"] for s in wide] == pytest.approx([ep1[s]["aux_loss"] for s in wide], abs=1e-4)
    assert all([sum(row) for row in wide[s]["expert_tokens"]] == [2 * 4 * 32] * 2 for s in wide)


def test_export_of_an_ep2_tp2_checkpoint_is_exact(runs, wide_runs):
    """The EP=2 x TP=2 step-4 checkpoint, exported, gives megatron's logits on it, and those of the
    EP=1 run's step-4 checkpoint."""
    from transformers import AutoModelForCausalLM

    from occi.train.export import megatron_logits, single_process_model

    run_dir = wide_runs["ep2tp2"]
    config = config_module.load(str(run_dir / "config.yaml"))  # as the run started (it stopped after 4 steps)
    result = occi("export", str(run_dir / "config.yaml"), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "hf" / "occi_export.json").read_text())["iteration"] == 4
    model = AutoModelForCausalLM.from_pretrained(run_dir / "hf")
    with torch.no_grad():
        actual = model(TOKENS).logits
    expected = megatron_logits(config, run_dir, TOKENS)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()
    length = TOKENS.shape[1]
    causal = torch.triu(torch.ones(1, 1, length, length, dtype=torch.bool), diagonal=1)
    with single_process_model(config, runs["ep1"], iteration=4) as (ep1, _), torch.no_grad():
        reference = ep1(TOKENS, torch.arange(length).expand(TOKENS.shape[0], -1), causal).float()
    assert torch.allclose(actual, reference, atol=1e-4), (actual - reference).abs().max()


# ---------------------------------------------------------------- layout checks and recipes

def _load_error(tmp_path: Path, **train) -> str:
    config = write_config(tmp_path, model={"num_experts": 6}, **train)
    with pytest.raises(Exception) as caught:
        config_module.load(str(config))
    return str(caught.value)


def test_impossible_expert_layouts_fail_at_load_time_with_one_line(tmp_path):
    config = write_config(tmp_path, model={"num_experts": 6}, expert_parallel=4, data_parallel=4, global_batch_size=8)
    result = occi("train", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.num_experts (6) is not a multiple of train.expert_parallel (4)" in lines[0]
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert "train.data_parallel must be a multiple of train.expert_parallel" in _load_error(
        tmp_path / "b", expert_parallel=2, data_parallel=1)
    dense = write_config(tmp_path / "c", model={"recipe": "tiny"}, expert_parallel=2, data_parallel=2)
    with pytest.raises(Exception, match="model has no experts"):
        config_module.load(str(dense))
    with pytest.raises(Exception, match="moe_top_k 8 is above num_experts 6"):
        config_module.load(str(write_config(tmp_path / "d", model={"num_experts": 6, "moe_top_k": 8})))


@pytest.mark.parametrize("train,model,expected", [
    ({"expert_parallel": 2, "tensor_parallel": 2, "data_parallel": 1, "global_batch_size": 2}, {},
     "train.data_parallel (1) is not a multiple of train.expert_parallel (2): expert-parallel groups are made of "
     "data-parallel ranks"),
    ({"expert_parallel": 2, "pipeline_parallel": 2, "data_parallel": 1, "global_batch_size": 2}, {},
     "(the world size TP x PP x DP = 2 a multiple of TP x PP x EP = 4); raise train.data_parallel"),
    ({"expert_parallel": 4, "data_parallel": 2}, {},
     "train.data_parallel (2) is not a multiple of train.expert_parallel (4)"),
    ({"tensor_parallel": 2}, {"seq_length": 33},
     "model.seq_length (33) is not a multiple of train.tensor_parallel (2): megatron-core trains experts at "
     "TP > 1 only with sequence parallelism"),
    ({"tensor_parallel": 2}, {"moe_ffn_hidden_size": 63},
     "the expert FFN width (63) is not a multiple of train.tensor_parallel (2)"),
])
def test_impossible_expert_parallel_layouts_name_the_fields_in_one_line(tmp_path, train, model, expected):
    with pytest.raises(Exception) as caught:
        config_module.load(str(write_config(tmp_path, model=model, **train)))
    message = str(caught.value)
    assert expected in message and "\n" not in message


def test_an_sft_sequence_length_that_tensor_parallel_cannot_split_fails_at_load_time(tmp_path):
    config = write_config(tmp_path, tensor_parallel=2)
    raw = yaml.safe_load(config.read_text())
    raw["sft"] = {"sources": [{"name": "chat", "kind": "jsonl", "path": "chat.jsonl"}], "seq_length": 31}
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(Exception, match=r"sft.seq_length \(31\) is not a multiple of train.tensor_parallel \(2\)"):
        config_module.load(str(config))


@pytest.mark.parametrize("parallel", list(WIDE.values()) + [{"expert_parallel": 2, "tensor_parallel": 2,
                                                               "pipeline_parallel": 2, "data_parallel": 2}])
def test_expert_parallel_combines_with_tensor_and_pipeline_parallel(tmp_path, parallel):
    cfg = config_module.load(str(write_config(tmp_path, **parallel)))
    assert cfg.train.world_size == parallel.get("tensor_parallel", 1) * parallel.get("pipeline_parallel", 1) * 2


def test_active_parameters_count_top_k_experts():
    moe = config_module.load("demo-moe").model
    per_expert = 3 * moe.hidden_size * moe.expert_ffn_hidden_size
    assert moe.parameters(2048) - moe.parameters(2048, active=True) == moe.num_layers * 2 * per_expert
    from occi.train.config import flops_per_token

    assert flops_per_token(moe, 2048) < 6 * moe.parameters(2048)


@pytest.mark.parametrize("name,nodes", [("moe-8x1b-eu", 2), ("moe-16b-a2b-eu", 8)])
def test_cluster_moe_recipes_render_their_slurm_resources(name, nodes, tmp_path):
    from occi.slurm.render import render
    from occi.slurm.submit import load_profile, nodes_for, plan

    raw = yaml.safe_load((Path(__file__).parents[1] / "configs" / f"{name}.yaml").read_text())
    raw["corpora"] = "demo"  # the real recipe's shard count asks the hub; the training resources do not
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    cfg = config_module.load(str(tmp_path / "run.yaml"))
    profile, _ = load_profile("leonardo-booster")
    step = next(s for s in plan(cfg, tmp_path / "run", profile) if s.name == "train")
    script = render(step, cfg, profile, tmp_path / "run", Path(cfg.source_file), nodes_for(cfg, profile), tmp_path)
    assert f"#SBATCH --nodes={nodes}" in script and "#SBATCH --gres=gpu:4" in script
    expected = {"moe-8x1b-eu": (6.87e9, 2.04e9), "moe-16b-a2b-eu": (14.79e9, 2.33e9)}[name]  # total, active
    assert (cfg.model.parameters(64000), cfg.model.parameters(64000, active=True)) == pytest.approx(expected, rel=0.01)


# ---------------------------------------------------------------- import of MoE bases

@pytest.mark.parametrize("kind,tensor_parallel", [("qwen2_moe", 2)])
def test_import_of_an_moe_base_is_exact_and_exports_back(kind, tensor_parallel, tmp_path):
    """At TP=2 each rank writes its slices of the experts and of the shared expert (every family at
    TP=1, experts included: tests/test_import.py)."""
    from occi.families import families

    base = make_base(tmp_path / "base", kind)
    config = {"name": "cpt", "languages": ["en", "de"], "corpora": "demo", "tokenizer": "demo",
              "model": {"base": str(base), "seq_length": 32},
              "train": {"micro_batch_size": 2, "global_batch_size": 4, "steps": 4, "warmup_steps": 1,
                        "tensor_parallel": tensor_parallel}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    result = occi("import", str(tmp_path / "run.yaml"), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    hf_class = families()[kind].hf_class
    assert f"imported {hf_class}" in result.stdout
    expected = logits(base, TOKENS)
    result = occi("export", str(tmp_path / "run.yaml"), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "hf" / "config.json").read_text())["architectures"] == [hf_class]
    actual = logits(run_dir / "hf", TOKENS)
    assert torch.allclose(actual, expected, atol=1e-4), (actual - expected).abs().max()


def test_card_section_says_total_and_active_parameters_and_shows_expert_load(runs, tmp_path):
    from occi.report.moe_section import moe_section
    from occi.train.config import ModelConfig

    model = config_module.load("demo-moe").model
    title, text = moe_section(model, runs["ep2"], 640, tmp_path / "report")
    assert title == "## Mixture of experts"
    total, active = model.parameters(640), model.parameters(640, active=True)
    assert f"| Parameters: total / active per token | {total:,} / {active:,}" in text
    assert "| Routed experts per layer, used per token | 4, top-2 |" in text
    assert "![share of routed tokens" in text and (tmp_path / "report" / "expert_load.png").is_file()
    dense = ModelConfig(num_layers=2, hidden_size=64, ffn_hidden_size=176, num_attention_heads=4, num_query_groups=2,
                        seq_length=32)
    assert moe_section(dense, runs["ep2"], 640, tmp_path / "report") == []
