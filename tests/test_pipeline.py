"""The whole pipeline on a small demo run: `occi run`, evaluation, the model card, publishing."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, occi, run_python
from occi.assets import asset_dir
from occi.eval import suites

LANGS = ["de", "fr", "sv"]


def small_run_config(folder: Path) -> Path:
    """The demo config on three languages with a short training: the whole pipeline in a minute."""
    demo = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    demo.update({"name": "mini", "languages": LANGS})
    demo["train"] = {**demo["train"], "steps": 10, "eval_interval": 5, "save_interval": 5}
    demo["eval"] = {**demo.get("eval", {}), "limit": 6}
    demo["train"]["goldfish"] = {"k": 4, "h": 13}
    demo["provider"] = {"name": "occi test lab", "contact": "https://example.org/contact", "placed_on_market": "2026-12-01",
                        "data_collected_until": "2026-06-30", "source_categories": {"samples": "public"}}
    path = folder / "mini.yaml"
    path.write_text(yaml.safe_dump(demo))
    return path


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("pipeline")
    config = small_run_config(folder)
    run_dir = folder / "run"
    umask = os.umask(0o022)  # the common default: what a group on a shared file system may read
    try:
        result = occi("run", str(config), "--run-dir", str(run_dir), timeout=900)
    finally:
        os.umask(umask)
    assert result.returncode == 0, result.stderr[-3000:]
    (folder / "occi-run.out").write_text(result.stdout)
    return config, run_dir


def test_occi_run_goes_from_corpus_to_card_and_then_skips_everything(full_run):
    config, run_dir = full_run
    for stage in ("corpora", "tokenizer", "data", "train", "hf", "eval", "report"):
        assert (run_dir / stage / "_DONE").exists(), stage
    output = (run_dir.parent / "occi-run.out").read_text()
    assert "peak memory" in output and "model card" in output and "leaderboard" in output
    again = occi("run", str(config), "--run-dir", str(run_dir))
    assert again.returncode == 0 and again.stdout.count("already done") == 7


def test_run_outputs_keep_the_umask_permissions(full_run):
    """Under umask 022 a run's outputs are 0644 files and 0755 folders (not the 0600/0700 of
    temporary files renamed into place), so others of the group can read the model."""
    _, run_dir = full_run
    named = [run_dir / "hf", run_dir / "hf" / "model.safetensors", run_dir / "hf" / "config.json",
             run_dir / "tokenizer", run_dir / "tokenizer" / "tokenizer.model", run_dir / "corpora" / "de",
             run_dir / "report", run_dir / "report" / "MODEL_CARD.md", run_dir / "config.yaml",
             run_dir / "data" / "blend.json", run_dir / "eval" / "table-hf.json"]
    everything = [path for path in run_dir.rglob("*") if path.name != "lock" and not path.is_symlink()]
    assert all(path.exists() for path in named)
    wrong = [f"{path.relative_to(run_dir)} {oct(path.stat().st_mode & 0o777)}" for path in {*named, *everything}
             if path.stat().st_mode & 0o777 != (0o755 if path.is_dir() else 0o644)]
    assert not wrong, wrong


def test_atomic_writes_follow_a_stricter_umask(tmp_path):
    from occi.fsutil import atomic_dir, atomic_write_text

    umask = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "file.txt", "x")
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "inside").write_text("y")
            (tmp / "inside").chmod(0o600)  # as a library writing through its own temporary file leaves it
    finally:
        os.umask(umask)
    assert (tmp_path / "file.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "folder" / "inside").stat().st_mode & 0o777 == 0o640


@pytest.mark.slow
def test_reconfigure_reruns_the_stages_that_read_a_changed_key(full_run, tmp_path):
    """Raising train.steps after a finished run: train, export, eval and report run again (and say
    so), the earlier stages stay done, and training goes on from its checkpoint on the schedule
    re-planned for the new step count, not at the old schedule's minimum learning rate."""
    import math

    config, run_dir = full_run
    run_copy = tmp_path / "run"
    shutil.copytree(run_dir, run_copy)
    changed = yaml.safe_load(config.read_text())
    changed["train"].update(steps=12, log_interval=1)
    longer = tmp_path / "mini.yaml"
    longer.write_text(yaml.safe_dump(changed))
    result = occi("run", str(longer), "--run-dir", str(run_copy), "--reconfigure", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stages to run again: train, export, eval, report" in result.stderr
    assert result.stdout.count("already done") == 3  # corpora, tokenizer, data
    assert "resumed from step 10" in result.stdout
    assert "the schedule differs from the checkpoint's (steps 10 -> 12): re-planned from step 10" in result.stdout
    lrs = {r["step"]: r["lr"] for r in map(json.loads, (run_copy / "train" / "log.jsonl").read_text().splitlines())
           if r["kind"] == "train"}
    train = changed["train"]  # megatron's cosine decay over the new 12 steps, evaluated at step 11
    progress = (11 - train["warmup_steps"]) / (12 - train["warmup_steps"])
    expected = train["min_lr"] + (train["lr"] - train["min_lr"]) * 0.5 * (1 + math.cos(math.pi * progress))
    assert lrs[11] == pytest.approx(expected, rel=1e-6) and lrs[11] > train["min_lr"] * 1.5
    assert json.loads((run_copy / "hf" / "occi_export.json").read_text())["iteration"] == 12
    for stage in ("train", "hf", "eval", "report"):
        assert (run_copy / stage / "_DONE").exists(), stage


def test_a_changed_key_invalidates_exactly_the_stages_that_read_it(tmp_path):
    """The stage list declares what each stage reads; adding an `sft:` section reruns sft's
    consumers (dpo, export, merge, eval, report) and nothing before them, eval's cell markers included."""
    from occi import pipeline
    from occi.config import RunConfig
    from occi.fsutil import mark_done
    from occi.rundir import RunDir

    fields = {f.name for f in __import__("dataclasses").fields(RunConfig)}
    for stage in pipeline.STAGES:  # a typo in a declaration would silently invalidate nothing
        assert all(read == "*" or read.split(".")[0] in fields for read in stage.reads), stage.name
        assert all(name in {s.name for s in pipeline.STAGES} for name in stage.inputs), stage.name
    run = RunDir(tmp_path)
    for stage in pipeline.STAGES:
        if stage.name != "sft":
            mark_done(getattr(run, stage.folder))
    cell = run.eval_cell("offline", "hf", "de", "mc")
    mark_done(cell)
    assert pipeline.invalidate(run, ["sft"]) == ["dpo", "export", "merge", "eval", "report"]
    assert [s for s in ("corpora", "tokenizer", "import", "data", "train", "distill") if not run.is_done(s)] == []
    assert not (cell / "_DONE").exists()
    assert pipeline.invalidate(run, ["card.license"]) == []  # report is already to be redone
    assert pipeline.invalidate(run, ["eval.limit"]) == []
    assert pipeline.invalidate(run, ["tokenizer.vocab_size"]) == ["tokenizer", "import", "data", "train"]
    assert run.is_done("corpora") and run.is_done("distill")


def test_offline_eval_gives_a_real_per_language_table(full_run):
    _, run_dir = full_run
    table = json.loads((run_dir / "eval" / "table-hf.json").read_text())
    done = {(c["language"], c["family"]): c for c in table["cells"]}
    assert set(done) == {(code, family) for code in LANGS for family in ("bpb", "mc")}
    for (code, family), cell in done.items():
        assert cell["state"] == "done"
        if family == "bpb":
            assert 0.5 < cell["value"] < 20  # bits per byte of a barely trained model
        else:
            assert 0.0 <= cell["value"] <= 1.0 and cell["stderr"] is not None
    # lm-eval's own layout: results JSON and samples
    folder = run_dir / "eval" / "offline" / "hf" / "de" / "mc"
    results = list(folder.rglob("results_*.json"))
    assert len(results) == 1 and results[0].parent.name == "hf"
    assert json.loads(results[0].read_text())["results"]["occi_mc_de"]["acc_norm,none"] == done[("de", "mc")]["value"]
    assert list(folder.rglob("samples_occi_mc_de_*.jsonl"))


def test_unreachable_benchmarks_fail_alone_and_are_reported(full_run, tmp_path):
    config, run_dir = full_run
    result = occi("eval", str(config), "--run-dir", str(run_dir), "--suite", "eu-leaderboard",
                  env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    table = json.loads((run_dir / "eval" / "table-hf.json").read_text())
    assert {c["state"] for c in table["cells"] if c["suite"] == "eu-leaderboard"} == {"failed"}
    assert {c["state"] for c in table["cells"] if c["suite"] == "offline"} == {"done"}  # kept beside
    assert "failed" in result.stdout and "cell(s) failed" in result.stdout


def test_generated_task_files_have_no_diff(tmp_path):
    for path, text in suites.generate(asset_dir("eval")).items():
        assert path.read_text(encoding="utf-8") == text, f"{path}: run `python -m occi.eval.suites`"


def test_every_leaderboard_task_exists_in_lm_eval():
    from lm_eval.tasks import TaskManager

    from occi import languages

    from occi.eval.tasks import shipped_folders

    known = set(TaskManager(include_path=[str(f) for f in shipped_folders()]).all_tasks)
    named = {task for code in languages.LANGUAGES for task in languages.lm_eval_tasks(code).values()}
    assert named and not named - known, sorted(named - known)
    gaps = suites.missing_benchmarks(["ga", "de"])
    assert "belebele" in gaps["ga"] and "xcopa" in gaps["de"]


def test_model_card_follows_hugging_face_conventions(full_run, tmp_path):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard import metadata_load
    from huggingface_hub.repocard_data import model_index_to_eval_results

    config, run_dir = full_run
    card_path = run_dir / "report" / "MODEL_CARD.md"
    metadata = metadata_load(card_path)
    assert metadata["language"] == LANGS and metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "text-generation" and metadata["license"]
    name, results = model_index_to_eval_results(metadata["model-index"])
    assert name == "occi-mini" and len(results) == 2 * len(LANGS)
    table = json.loads((run_dir / "eval" / "table-hf.json").read_text())
    values = {c["task"]: c["value"] for c in table["cells"] if c["state"] == "done"}
    assert {r.dataset_type: r.metric_value for r in results} == pytest.approx(values, abs=1e-6)
    card = ModelCard.load(card_path)
    for section in ("## Model details", "## Intended uses and limitations", "## Training data", "## Tokenizer",
                    "## Training", "## Evaluation", "## Compute", "## How to use", "## Citation"):
        assert section in card.text, section
    assert (run_dir / "report" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    blend = json.loads((run_dir / "data" / "blend.json").read_text())
    assert f"{blend['languages']['de']['train']['tokens']:,}" in card.text


def test_the_cards_usage_snippet_runs_in_transformers_4_and_5(full_run, transformers4):
    """The card's own Python block, as printed, with the export's path for the repository id."""
    _, run_dir = full_run
    text = (run_dir / "report" / "MODEL_CARD.md").read_text()
    snippet = text.split("## How to use")[1].split("```python")[1].split("```")[0]
    snippet = snippet.replace('"path/to/hf"', repr(str(run_dir / "hf")))
    prompt = snippet.split('tokenizer("')[1].split('"')[0]
    for python, major in ((sys.executable, "5."), (transformers4, "4.")):
        result = run_python(python, "import transformers\nprint(transformers.__version__)\n" + snippet)
        assert result.returncode == 0, f"transformers {major}x: {result.stderr[-2000:]}"
        version, printed = result.stdout.split("\n", 1)
        assert version.startswith(major) and printed.startswith(prompt), result.stdout


def test_a_section_without_data_says_so(full_run, tmp_path):
    import shutil

    config, run_dir = full_run
    partial = tmp_path / "partial"
    shutil.copytree(run_dir / "corpora", partial / "corpora")
    result = occi("card", str(config), "--run-dir", str(partial))
    assert result.returncode == 0, result.stderr
    text = (partial / "report" / "MODEL_CARD.md").read_text()
    assert "_Not available: the training log is missing" in text and "_Not available: the tokenizer report" in text


def test_push_dry_run_lists_files_and_offline_push_fails_clearly(full_run):
    config, run_dir = full_run
    dry = occi("card", str(config), "--run-dir", str(run_dir), "--push", "occi/mini-test", "--dry-run",
               env={"HF_HUB_OFFLINE": "1"})  # the repository is not compared (no network here)
    assert dry.returncode == 0, dry.stderr
    assert "would upload to https://huggingface.co/occi/mini-test" in dry.stdout
    for name in ("model.safetensors", "config.json", "tokenizer.json", "README.md", "loss_curve.png",
                 "training-content-summary.md", "training-content-summary.json"):
        assert name in dry.stdout
    secret = "hf_occiTestTokenThatMustNeverBePrinted"
    real = occi("card", str(config), "--run-dir", str(run_dir), "--push", "occi/mini-test",
                env={"HF_TOKEN": secret, "HF_HUB_OFFLINE": "1"})
    assert real.returncode == 2 and "upload to occi/mini-test failed" in real.stderr
    assert secret not in real.stderr + real.stdout
    no_token = occi("card", str(config), "--run-dir", str(run_dir), "--push", "occi/mini-test",
                    env={"HF_TOKEN": "", "HF_HOME": str(run_dir / "no-login")})
    assert no_token.returncode == 2 and "no Hugging Face token" in no_token.stderr


def test_demo_training_content_summary_is_complete_and_agrees_with_the_runs_records(full_run):
    """Every number of the EU AI Act summary against stats.json, blend.json, the training log and
    the data order megatron's blended dataset really gives, read sample by sample."""
    from collections import Counter

    from occi import config as occi_config
    from occi.rundir import RunDir
    from occi.train.trainer import _build_datasets

    _, run_dir = full_run
    summary = json.loads((run_dir / "report" / "training-content-summary.json").read_text())
    text = (run_dir / "report" / "training-content-summary.md").read_text()
    assert summary["status"] == "complete" and summary["todo"] == [] and "TO DO" not in text
    cfg = occi_config.load(str(run_dir / "config.yaml"))
    seq, batch = cfg.model.seq_length, cfg.train.global_batch_size
    train = [json.loads(line) for line in (run_dir / "train" / "log.jsonl").read_text().splitlines()]
    last = [r for r in train if r["kind"] == "train"][-1]
    train_data, _ = _build_datasets(cfg, RunDir(run_dir).read_blend(), seq)
    read = Counter(int(train_data[i]["dataset_id"]) for i in range(last["step"] * batch))
    assert last["language_samples"] == {code: read[j] for j, code in enumerate(LANGS)}
    general = summary["sections"]["1.3"]
    blend = json.loads((run_dir / "data" / "blend.json").read_text())["languages"]
    assert general["tokens_trained"] == last["step"] * batch * seq == sum(read.values()) * seq
    assert general["training_data_size"]["text"]["tokens"] == sum(blend[c]["train"]["tokens"] for c in LANGS)
    assert general["training_data_size"]["text"]["range"] == "less than 1 billion tokens"
    for j, (code, row) in enumerate(zip(LANGS, general["languages"])):
        tokens = read[j] * seq
        assert row["tokens_trained"] == tokens and row["tokens_in_data"] == blend[code]["train"]["tokens"]
        assert row["share"] == round(tokens / general["tokens_trained"], 6)
        assert row["epochs"] == round(tokens / blend[code]["train"]["tokens"], 3)
        assert f"| {row['name']} ({code}) | {tokens:,} | {100 * row['share']:.2f}% |" in text
    stats = json.loads((run_dir / "corpora" / "stats.json").read_text())
    (source,) = summary["sections"]["2.1"]["sources"]
    kept = stats["sources"]["samples"]
    assert (source["documents"], source["bytes"], source["words"]) == (kept["documents_kept"], kept["bytes_kept"], kept["words_kept"])
    drops = stats["totals"]["drops"]
    other = summary["sections"]["3.3"]
    assert other["deduplication"]["documents_dropped"] == {k[6:]: v for k, v in drops.items() if k.startswith("dedup/")}
    assert other["language_identification"]["documents_dropped"] == {k[7:]: v for k, v in drops.items() if k.startswith("langid/")}
    shown = sum(sum(reasons.values()) for reasons in other["quality_filters"].values())
    assert shown + sum(other["deduplication"]["documents_dropped"].values()) \
        + sum(other["language_identification"]["documents_dropped"].values()) == sum(drops.values())
    assert (other["documents_in"], other["documents_kept"]) == (stats["totals"]["documents_in"], stats["totals"]["documents_kept"])
    # the Goldfish count of every step, recomputed with the paper's rule from the samples megatron gave that step
    from test_content_summary import paper_rule

    k, h = 4, 13
    for record in [r for r in train if r["kind"] == "train"]:
        dropped = loss_tokens = 0
        for i in range(record["batch"] * batch, (record["batch"] + 1) * batch):
            sample = train_data[i]
            sequence = [*map(int, sample["tokens"]), int(sample["labels"][-1])]
            keep = paper_rule(sequence, k, h)[1:]
            loss_mask = [bool(m) for m in sample["loss_mask"]]
            loss_tokens += sum(loss_mask)
            dropped += sum(m and not kept for m, kept in zip(loss_mask, keep))
        assert (record["goldfish_dropped"], record["goldfish_loss_tokens"]) == (dropped, loss_tokens), record["step"]
    logged = other["memorisation_control"]["logged"]
    steps = [r for r in train if r["kind"] == "train"]
    assert logged == {"dropped": sum(r["goldfish_dropped"] for r in steps),
                      "loss_tokens": sum(r["goldfish_loss_tokens"] for r in steps), "steps": len(steps)}
    assert 0 < logged["dropped"] < logged["loss_tokens"]
    stated = (f"1 token in k = 4 left out of the loss, by a hash of the h = 13 tokens before it; {logged['dropped']:,} of "
              f"{logged['loss_tokens']:,} loss tokens left out")
    assert other["memorisation_control"]["k"] == 4 and stated in text
    assert summary["sections"]["1.3"]["latest_collection"]["date"] == "2026-06-30"
    card = (run_dir / "report" / "MODEL_CARD.md").read_text()
    assert "[training-content-summary.md](training-content-summary.md)" in card and "Status: **complete**" in card
    assert f"| Memorisation control | Goldfish loss (Hans et al., 2024): {stated}" in card


def test_committed_model_card_is_what_occi_card_produces(tmp_path):
    reference = REPO / "reference" / "demo"
    if not reference.exists():
        pytest.fail("reference/demo is missing: regenerate it with scripts/update-reference.sh")
    out = tmp_path / "MODEL_CARD.md"
    result = occi("card", str(reference / "config.yaml"), "--run-dir", str(reference), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text() == (REPO / "MODEL_CARD.md").read_text()
    for name in ("training-content-summary.md", "training-content-summary.json"):  # the summary the card links
        assert (tmp_path / name).read_text() == (REPO / name).read_text(), name


def test_a_moved_run_keeps_its_evaluation_and_data(full_run, tmp_path):
    """Run files store paths relative to the run (eval/models.json, data/blend.json): a copied run
    finds its own model's results and data where it now is, and re-running eval there redoes nothing."""
    import shutil

    config, run_dir = full_run
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(run_dir, moved, ignore=shutil.ignore_patterns("checkpoints"))
    assert str(run_dir) not in (moved / "eval" / "models.json").read_text()
    assert str(run_dir) not in (moved / "data" / "blend.json").read_text()
    card = occi("card", str(moved / "config.yaml"), "--run-dir", str(moved), "--out", str(tmp_path / "card.md"))
    assert card.returncode == 0, card.stderr
    text = (tmp_path / "card.md").read_text()
    assert "_Not available: the evaluation results" not in text and "| de |" in text
    again = occi("eval", str(moved / "config.yaml"), "--run-dir", str(moved), "--suite", "offline")
    assert again.returncode == 0, again.stderr[-2000:]
    assert not list((moved / "eval" / "offline").glob("hf-*"))  # the same label: no second model folder


# ---------------------------------------------------------------- lineage, cost and energy on the card

def test_card_front_matter_round_trips_and_carries_lineage_cost_and_energy(full_run, tmp_path):
    import hashlib

    from huggingface_hub import ModelCard
    from huggingface_hub.repocard import metadata_load
    from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

    config, run_dir = full_run
    # the run recorded which occi ran each stage and what each device job used
    stages = [json.loads(line)["stage"] for line in (run_dir / "provenance.jsonl").read_text().splitlines()]
    assert stages[:6] == ["corpora", "tokenizer", "data", "train", "export", "eval"] and "report" not in stages
    jobs = [json.loads(line) for line in (run_dir / "energy.jsonl").read_text().splitlines()]
    assert [j["job"] for j in jobs][:2] == ["train", "eval"]
    for job in jobs:  # this machine has neither NVML nor readable RAPL: said, not guessed
        assert job["seconds"] > 0 and job["cpu_hours"] > 0
        assert (job["energy_kwh"] is None) == (job["measured"] is None)
        assert job["energy_kwh"] is not None or job["method"].startswith("not measured: ")
    assert (run_dir / "report" / "cost.md").read_text().startswith("# Cost and energy")
    priced = yaml.safe_load(config.read_text())
    priced["card"] = {"price_per_gpu_hour": 3.0}
    (tmp_path / "priced.yaml").write_text(yaml.safe_dump(priced))
    plan = occi("plan", str(tmp_path / "priced.yaml"), "--cluster", "marenostrum5-acc", "--run-dir", str(run_dir))
    assert plan.returncode == 0, plan.stderr
    card_path = tmp_path / "card.md"
    result = occi("card", str(config), "--run-dir", str(run_dir), "--out", str(card_path))
    assert result.returncode == 0, result.stderr

    metadata = metadata_load(card_path)
    name, results = model_index_to_eval_results(metadata["model-index"])
    assert eval_results_to_model_index(name, results) == metadata["model-index"]  # round trip
    assert ModelCard.load(card_path).data.eval_results == results
    for entry in metadata["model-index"][0]["results"]:
        assert entry["dataset"]["args"] == {"num_few_shot": 0} and entry["source"]["name"].startswith("lm-eval task ")
    text = card_path.read_text()
    lineage = text.split("## Lineage")[1]
    assert "Trained on 3 languages" in lineage and "all official languages of the EU" in lineage
    assert "(corpora, tokenizer, data, train, export, eval)" in lineage
    tokenizer_hash = hashlib.sha256((run_dir / "tokenizer" / "tokenizer.model").read_bytes()).hexdigest()
    assert f"sha256 `{tokenizer_hash}`" in lineage
    assert "checkpoint iteration 10" in lineage and "| `occi_mc_de` | 1.0 | local (run files) | 0 | 0.4.13 |" in lineage
    stats = json.loads((run_dir / "corpora" / "stats.json").read_text())["languages"]["de"]
    assert f"| de | {stats['documents_in']:,} | {stats['documents_kept']:,} |" in lineage
    cost = text.split("## Cost and energy")[1].split("## Lineage")[0]
    import re

    assert re.search(r"\| train \| \d+ \|", cost) and re.search(r"\| eval \| \d+ \|", cost)  # other tests evaluate again
    assert "planned (`occi plan` for marenostrum5-acc: 1 x NVIDIA H100 SXM 64 GB" in cost
    assert "| GPU-hours |" in cost and "The run trained without GPUs here" in cost


def test_non_eu_languages_are_named_and_hub_datasets_reach_the_model_index(tmp_path):
    from occi import config as occi_config
    from occi.report.lineage_section import eval_tasks, hub_dataset, trained_languages
    from occi.rundir import RunDir

    demo = occi_config.load("demo")
    assert trained_languages(demo).endswith("Catalan (ca), Basque (eu), Galician (gl), Norwegian (no) are not "
                                             "official EU languages.")
    folder = tmp_path / "run" / "eval" / "eu-leaderboard" / "m" / "de" / "arc"
    folder.mkdir(parents=True)
    (folder / "results_2026-12-01T00-00-00.json").write_text(json.dumps({
        "results": {"arc_de": {"acc_norm,none": 0.4}}, "versions": {"arc_de": 1.0}, "n-shot": {"arc_de": 25},
        "configs": {"arc_de": {"task": "arc_de", "dataset_path": "alexandrainst/m_arc", "dataset_name": "de",
                               "num_fewshot": 25}},
        "lm_eval_version": "0.4.13"}))
    tasks = eval_tasks(RunDir(tmp_path / "run"))
    assert tasks["arc_de"]["num_fewshot"] == 25 and tasks["arc_de"]["version"] == 1.0
    assert hub_dataset(tasks["arc_de"]) == ("alexandrainst/m_arc", "de")
    assert hub_dataset({"dataset_path": "json", "dataset_name": None}) is None
