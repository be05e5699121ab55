"""Continual pretraining from an imported base: `tokenizer: base` (HF tokenizer.json), data prepare's
fast path, training from iter_0000000, export and generation with transformers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import occi
from hf_bases import make_base
from occi.rundir import RunDir

LANGS = ["en", "de", "fr"]
EDGE_TEXTS = ["  two leading spaces", "tabs\tand\nnew lines\n\n", "Zahlen 1234567 und €, emoji 🙂", "", " ",
              "ÄÖÜ äöü ß — “quotes” and trailing   ", "<|end_of_text|> is a special token"]


def cpt_config(folder: Path, base: Path, **train) -> Path:
    config = {"name": "cpt", "languages": LANGS, "corpora": {"recipe": "demo", "workers": 1}, "tokenizer": "base",
              "model": {"base": str(base), "seq_length": 32},
              "train": {"micro_batch_size": 2, "global_batch_size": 4, "steps": 6, "warmup_steps": 2, "lr": 0.001,
                        "min_lr": 0.0001, "eval_interval": 3, "save_interval": 3, "log_interval": 1,
                        "eval_samples": 2, **train}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.yaml").write_text(yaml.safe_dump(config))
    return folder / "run.yaml"


@pytest.fixture(scope="module")
def cpt_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(config, run dir, base): corpora, the base's tokenizer kept, the base imported, data prepared."""
    folder = tmp_path_factory.mktemp("cpt")
    base = make_base(folder / "base", "qwen2")
    config = cpt_config(folder, base)
    run_dir = folder / "run"
    for stage in (["corpora", "build"], ["tokenizer", "train"], ["import"], ["data", "prepare"]):
        result = occi(*stage, str(config), "--run-dir", str(run_dir))
        assert result.returncode == 0, result.stderr[-3000:]
    return config, run_dir, base


def test_kept_tokenizer_and_fast_path_ids_equal_autotokenizer(cpt_run):
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from transformers import AutoTokenizer

    from occi.corpora.reader import read_texts
    from occi.data.hf_encoder import HFDocumentEncoder

    _, run_dir, base = cpt_run
    assert (run_dir / "tokenizer" / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    assert json.loads((run_dir / "tokenizer" / "report.json").read_text())["languages"] == LANGS
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")  # the base's files, kept
    blend = RunDir(run_dir).read_blend()  # blend.json stores paths relative to the run directory
    assert blend["vocab_size"] == len(tokenizer) and blend["eod_id"] == tokenizer.eos_token_id
    for code in LANGS:
        texts = [text for _, text in read_texts(run_dir, code, "train")]
        dataset = IndexedDataset(blend["languages"][code]["prefix"])
        assert [dataset[i].tolist() for i in range(len(dataset))] == \
            [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    ids, lengths = HFDocumentEncoder(run_dir / "tokenizer").encode(EDGE_TEXTS)
    expected = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in EDGE_TEXTS]
    assert lengths.tolist() == [len(e) for e in expected]
    assert ids.tolist() == [i for e in expected for i in e]


def test_train_from_the_import_then_export_and_generate(cpt_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config, run_dir, base = cpt_run
    result = occi("train", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train: step 6/6 (complete)" in result.stdout
    log = [json.loads(line) for line in (run_dir / "train" / "log.jsonl").read_text().splitlines()]
    assert any("continuing from the imported base" in r.get("text", "") for r in log)
    steps = [r for r in log if r["kind"] == "train"]
    assert [r["step"] for r in steps] == list(range(1, 7))  # the step counter starts at 0
    assert steps[0]["lr"] < steps[1]["lr"] == pytest.approx(0.001)  # the schedule starts afresh (warmup)
    result = occi("export", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "hf" / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]
    model = AutoModelForCausalLM.from_pretrained(run_dir / "hf")
    original = AutoModelForCausalLM.from_pretrained(base)
    before = dict(original.named_parameters())
    moved = {n: (p - before[n]).abs().max().item() for n, p in model.named_parameters()}
    assert max(moved.values()) > 0, "training changed the weights"
    # ... by at most 6 Adam steps of lr 0.001 each: training started from the base's weights (std 0.05)
    assert max(moved.values()) < 0.01, moved
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "hf")
    inputs = tokenizer("The market opens", return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 6
    assert isinstance(tokenizer.decode(generated[0]), str)


def test_replay_share_is_fixed_and_the_rest_keeps_its_proportions():
    from occi.data.blend import with_replay

    weights = with_replay({"en": 0.5, "de": 0.3, "fr": 0.2}, {"en": 0.25})
    assert weights == pytest.approx({"en": 0.25, "de": 0.45, "fr": 0.3})


@pytest.mark.parametrize("name, cluster, nodes", [("cpt-llama-3.1-8b-eu", "juwels-booster", 8),
                                                  ("cpt-mistral-7b-eu", "leonardo-booster", 8),
                                                  ("cpt-gemma-3-4b", "leonardo-booster", 8)])
def test_cluster_cpt_recipes_render(name, cluster, nodes, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "corpora").mkdir(parents=True)  # planning corpora needs the hub: mark that stage done
    (run_dir / "corpora" / "_DONE").write_text("{}")
    result = occi("slurm", "submit", name, "--run-dir", str(run_dir), "--cluster", cluster, "--dry-run")
    assert result.returncode == 0, result.stderr
    steps = {s["step"]: s for s in json.loads((run_dir / "slurm" / "plan.json").read_text())["steps"]}
    assert list(steps)[:3] == ["tokenizer", "import", "data-tokenize"]
    assert steps["import"]["after"] == ["tokenizer"] and steps["data-tokenize"]["after"] == ["import"]
    assert steps["train"]["nodes"] == nodes
    script = (run_dir / "slurm" / "import.sbatch").read_text()
    assert "-m occi.cli import <CONFIG> --run-dir" in script or "-m occi.cli import " in script
    from occi import config

    cfg = config.load(name)
    assert cfg.tokenizer.source == "base" and cfg.data.replay and cfg.train.lr < 3e-4


def test_extended_tokenizer_keeps_ids_and_initialises_new_rows_from_their_parts(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = make_base(tmp_path / "base", "qwen2")
    config = yaml.safe_load(cpt_config(tmp_path, base).read_text())
    config.update(languages=["en", "de"], tokenizer={"extend": "demo", "add": 40})
    (tmp_path / "extend.yaml").write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    for stage in (["corpora", "build"], ["tokenizer", "train"], ["import"], ["export"]):
        result = occi(*stage, str(tmp_path / "extend.yaml"), "--run-dir", str(run_dir))
        assert result.returncode == 0, result.stderr[-3000:]
    extension = json.loads((run_dir / "tokenizer" / "extension.json").read_text())
    assert 0 < extension["added"] <= 40 and [p["id"] for p in extension["pieces"]] == list(range(300, 300 + extension["added"]))
    from tokenizers import Tokenizer

    old = Tokenizer.from_file(str(base / "tokenizer.json")).get_vocab(with_added_tokens=True)
    extended = Tokenizer.from_file(str(run_dir / "hf" / "tokenizer.json")).get_vocab(with_added_tokens=True)
    assert {piece: extended[piece] for piece in old} == old  # every existing id keeps its piece
    assert len(extended) == len(old) + extension["added"]
    new = AutoTokenizer.from_pretrained(run_dir / "hf")  # loads in transformers
    text = " ".join(t for t in (p["text"] for p in extension["pieces"]) if t)
    assert any(i >= 300 for i in new(text)["input_ids"]), "the new pieces are used"
    report = json.loads((run_dir / "tokenizer" / "report.json").read_text())
    names = list(report["tokenizers"])
    assert names[1] == "base" and names[0].startswith("extended")
    assert all(report["tokenizers"][names[0]]["languages"][c]["fertility"]
               <= report["tokenizers"]["base"]["languages"][c]["fertility"] for c in ["en", "de"])
    comparison = report["comparison"]  # same text: the extended tokens over the base's, largest gain first
    for code in ["en", "de"]:
        tokens = [report["tokenizers"][n]["languages"][code]["tokens"] for n in names]
        assert comparison["languages"][code]["token_ratio"] == round(tokens[0] / tokens[1], 4) <= 1.0
    assert sorted(comparison["most_gain"], key=lambda c: comparison["languages"][c]["token_ratio"]) == comparison["most_gain"]
    assert "the languages that gain most first" in (run_dir / "tokenizer" / "report.md").read_text()
    exported, original = (AutoModelForCausalLM.from_pretrained(f) for f in (run_dir / "hf", base))
    rows, before = exported.get_input_embeddings().weight, original.get_input_embeddings().weight
    head, head_before = exported.lm_head.weight, original.lm_head.weight
    # the rows of existing ids are the base's (new ids start after the tokenizer's 300, in the base's
    # spare rows 300-319 and then in 64 added rows)
    assert rows.shape[0] == 384 and torch.equal(rows[:300], before[:300]) and torch.equal(head[:300], head_before[:300])
    for piece in extension["pieces"]:
        assert torch.allclose(rows[piece["id"]], before[piece["parts"]].mean(0), atol=1e-6)
        assert torch.allclose(head[piece["id"]], head_before[piece["parts"]].mean(0), atol=1e-6)
    tokens = torch.randint(0, 300, (1, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(exported(tokens).logits[..., :300], original(tokens).logits[..., :300], atol=1e-4)


@pytest.mark.slow
def test_occi_run_demo_cpt_end_to_end(tmp_path):
    run_dir = tmp_path / "demo-cpt"
    result = occi("run", "demo-cpt", "--run-dir", str(run_dir), timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[3/8] import: running" in result.stdout and "all stages done" in result.stdout
    card = (run_dir / "report" / "MODEL_CARD.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == "tiny-llama-base" and front["base_model_relation"] == "finetune"
    assert "| Base revision |" in card and "the base model's tokenizer, kept as it is" in card
    assert "| lang | benchmark | base | continued | change |" in card
    blend = json.loads((run_dir / "data" / "blend.json").read_text())
    assert blend["languages"]["en"]["weight"] == 0.25  # the replay share
    again = occi("run", "demo-cpt", "--run-dir", str(run_dir))
    assert again.returncode == 0 and again.stdout.count("already done") == 8
