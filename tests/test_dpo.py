"""Preference tuning (`occi dpo`): pair checks, TRL's tokenization, and DPO exact against TRL's
DPOTrainer step by step, at TP=1 through a stop and resume, at TP=2 and at PP=2 (with the live
reference), and SimPO against its formula, all with the real parts (megatron-core through torchrun
on CPU, transformers, TRL, fastText language ID).

One module fixture imports a tiny random Qwen2 base (tests/hf_bases.py), tunes it on twelve pairs
(four per language) plus a source of broken rows, stopped after two steps and resumed, and exports it.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import needs_module, occi
from hf_bases import make_base

pytestmark = pytest.mark.timeout(1800)

LANGS = ["en", "de", "fr"]
SEQ = 128  # the test tokenizer (300 pieces) makes 40-60-token sequences of these pairs
DPO = {"beta": 0.1, "lr": 0.001, "lr_schedule": "constant", "warmup_fraction": 0.0, "epochs": 2,
       "micro_batch_size": 2, "global_batch_size": 4, "seq_length": SEQ, "save_interval": 1000}
PAIRS = {
    "en": [("What is the capital of France?", "The capital of France is Paris.",
            "I think it is probably Berlin, maybe."),
           ("How many legs does a spider have?", "A spider has eight legs.", "A spider has six legs like an insect."),
           ("What colour is the sky on a clear day?", "On a clear day the sky is blue.",
            "The sky is green on most days."),
           ("Please name a fruit that is yellow.", "A banana is a yellow fruit.", "A cucumber is a yellow fruit.")],
    "de": [("Was ist die Hauptstadt von Deutschland?", "Die Hauptstadt von Deutschland ist Berlin.",
            "Ich glaube, die Hauptstadt ist vielleicht München."),
           ("Wie viele Tage hat eine Woche?", "Eine Woche hat sieben Tage.", "Eine Woche hat ungefähr zehn Tage."),
           ("Welche Farbe hat frisches Gras?", "Frisches Gras ist grün.", "Frisches Gras ist meistens violett."),
           ("Nenne bitte ein Tier, das bellt.", "Ein Hund ist ein Tier, das bellt.",
            "Eine Katze ist ein Tier, das bellt.")],
    "fr": [("Quelle est la capitale de l'Italie ?", "La capitale de l'Italie est Rome.",
            "Je pense que la capitale est peut-être Milan."),
           ("Combien de mois y a-t-il dans une année ?", "Il y a douze mois dans une année.",
            "Il y a environ dix mois dans une année."),
           ("De quelle couleur est la neige ?", "La neige est blanche.", "La neige est souvent rouge et noire."),
           ("Donne-moi le nom d'un animal qui nage.", "Le poisson est un animal qui nage.",
            "La girafe est un animal qui nage très bien.")],
}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def bot(text: str) -> dict:
    return {"role": "assistant", "content": text}


def pair_rows() -> list[dict]:
    """TRL's conversational preference format, with the language."""
    return [{"prompt": [user(p)], "chosen": [bot(c)], "rejected": [bot(r)], "language": code}
            for code, items in PAIRS.items() for p, c, r in items]


def broken_rows(good: list[dict]) -> list:
    """One row per reason a row can be dropped (the raw string is a line that is not JSON)."""
    en = lambda **row: {"language": "en", "prompt": "Tell me something about the sea, please.",  # noqa: E731
                        "chosen": "The sea is large, deep and full of salt water.",
                        "rejected": "The sea is a small pond in my garden.", **row}
    long_answer = " ".join(["The weather today is sunny and warm in the whole country."] * 12)
    return [
        "{not json",
        ["a", "list"],
        {k: v for k, v in en().items() if k != "prompt"},
        {k: v for k, v in en().items() if k != "chosen"},
        {k: v for k, v in en().items() if k != "rejected"},
        en(prompt=[{"content": "a turn without a role"}]),
        en(prompt=[{"role": "narrator", "content": "Once upon a time there was a sea."}]),
        en(chosen="   "),
        en(prompt=[user("Tell me about the sea."), bot("The sea is large.")]),
        en(chosen=[user("The sea is large, deep and full of salt water.")]),
        en(rejected="The sea is large, deep and full of salt water."),
        {k: v for k, v in en().items() if k != "language"},
        en(language="sv", prompt="Berätta något om havet, tack så mycket."),
        en(prompt="Erzähl mir bitte etwas über das Meer und die Wellen."),
        en(chosen="Das Meer ist groß, tief und voller Salzwasser."),
        en(rejected="La mer est une petite mare dans mon jardin."),
        good[0],  # an exact duplicate of the first pair's prompt
        {**good[1], "prompt": [user(good[1]["prompt"][0]["content"] + "?")]},  # a near duplicate of the second's
        en(prompt="Tell me about the weather today, in every detail.", chosen=long_answer),
    ]


def write_jsonl(path: Path, rows: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")


def write_config(folder: Path, name: str = "run.yaml", parallel: dict | None = None, **dpo) -> Path:
    config = {"name": "t", "languages": LANGS, "corpora": {"recipe": "demo", "workers": 1}, "tokenizer": "base",
              "model": {"base": "base", "seq_length": SEQ},
              "train": {"micro_batch_size": 2, "global_batch_size": 4, "steps": 2, **(parallel or {})},
              "dpo": {"sources": [{"name": "pairs", "kind": "jsonl", "path": "pairs.jsonl"},
                                  {"name": "broken", "kind": "jsonl", "path": "broken.jsonl"},
                                  {"name": "never", "kind": "parquet", "path": "never.parquet", "weight": 0}],
                      **DPO, **dpo}}
    path = folder / name
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def write_inputs(folder: Path) -> None:
    good = pair_rows()
    write_jsonl(folder / "pairs.jsonl", good)
    write_jsonl(folder / "broken.jsonl", broken_rows(good))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"language": "en", "prompt": "Is this pair ever trained on at all?",
                                          "chosen": "No, its source has the weight zero.",
                                          "rejected": "Yes, every single epoch of the run."}]),
                   folder / "never.parquet")


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory) -> tuple[Path, Path]:
    """(config, run directory): the base imported, tuned 2 steps, stopped, resumed to 6, exported."""
    folder = tmp_path_factory.mktemp("dpo")
    make_base(folder / "base", "qwen2")
    write_inputs(folder)
    run_dir = folder / "run"
    result = occi("import", str(write_config(folder)), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    first = occi("dpo", str(write_config(folder, stop_after_steps=2)), "--run-dir", str(run_dir), "--reconfigure",
                 timeout=900)
    assert first.returncode == 0 and "stopped early" in first.stdout, first.stdout[-2000:] + first.stderr[-3000:]
    for stage in (["dpo"], ["export"]):
        result = occi(*stage, str(write_config(folder)), "--run-dir", str(run_dir), "--reconfigure", timeout=900)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return write_config(folder), run_dir


def dpo_log(run_dir: Path) -> dict[int, dict]:
    records = [json.loads(line) for line in (run_dir / "dpo" / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in records if r["kind"] == "train"}


def copy_run(run_dir: Path, config: Path, folder: Path) -> Path:
    """The run up to its DPO data: checkpoints, logs and the reference left behind."""
    copy = folder / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints", "log.jsonl", "hf", "config.yaml",
                                                                 "reference_logps.npz", "summary.json", "_DONE"))
    shutil.copytree(run_dir / "checkpoints", copy / "checkpoints")
    (copy / "dpo" / "data" / "_DONE").write_text("{}")
    for name in ("pairs.jsonl", "broken.jsonl", "never.parquet"):
        shutil.copy(config.parent / name, folder / name)
    shutil.copytree(config.parent / "base", folder / "base")
    return copy


def test_broken_pairs_are_counted_under_their_own_reasons_never_fatal(dpo_run):
    from occi.dpo.data import DROP_REASONS

    _, run_dir = dpo_run
    stats = json.loads((run_dir / "dpo" / "data" / "stats.json").read_text())
    broken = stats["sources"]["broken"]
    assert broken["kept"] == 0 and broken["rows_in"] == len(broken_rows(pair_rows()))
    assert broken["drops"] == {reason: 1 for reason in DROP_REASONS
                               if reason not in ("read/unreadable_file", "weight/sampled_out")}
    assert stats["sources"]["never"]["drops"] == {"weight/sampled_out": 1}  # read from Parquet
    assert stats["sources"]["pairs"]["kept"] == 12 and stats["sources"]["pairs"]["drops"] == {}
    assert {code: stats["languages"][code]["kept"] for code in LANGS} == {"en": 4, "de": 4, "fr": 4}
    assert (run_dir / "dpo" / "data" / "kept_dropped.png").stat().st_size > 1000


@needs_module("trl", "TRL (the `test` extra)")
def test_dpo_matches_trl_step_by_step_through_a_stop_and_resume(dpo_run, tmp_path):
    """Six steps (two epochs of twelve pairs, four per step), stopped after two and resumed: TRL's
    DPOTrainer on the same base, tokenizer, pairs in the same order and hyper-parameters gives the
    same token ids and answer starts, and per step the same loss, chosen and rejected rewards and
    gradient norm within 1e-4 relative. The export carries the DPO weights and chat template."""
    from trl_reference import trl_steps

    from occi import config as config_module
    from occi.dpo import batches
    from occi.dpo.data import Pairs

    config, run_dir = dpo_run
    cfg = config_module.load(str(run_dir / "config.yaml"))
    pairs = Pairs.load(run_dir / "dpo" / "data" / "pairs.npz")
    plan = batches.plan(pairs, cfg.dpo.epochs, cfg.dpo.global_batch_size, cfg.seed)
    order = [p for step in plan for p in step]
    assert len(plan) == 6 and batches.EMPTY not in order
    train = {k: getattr(cfg.train, k) for k in ("adam_beta1", "adam_beta2", "adam_eps")}
    steps, trainer = trl_steps(config.parent / "base", run_dir / "dpo" / "tokenizer", pair_rows(), order,
                               DPO, train, tmp_path)
    for number, pair in enumerate(order[:12]):
        example = trainer.train_dataset[number]
        assert pairs.sequence(2 * pair).tolist() == example["prompt_ids"] + example["chosen_ids"]
        assert pairs.sequence(2 * pair + 1).tolist() == example["prompt_ids"] + example["rejected_ids"]
        assert pairs.answer_start[2 * pair] == len(example["prompt_ids"])
    log = dpo_log(run_dir)
    assert sorted(log) == list(range(1, 7)) and len(steps) == 6
    assert "resumed DPO from step 2" in (run_dir / "dpo" / "log.jsonl").read_text()
    for ours, theirs in (("loss", "loss"), ("grad_norm", "grad_norm"), ("rewards_chosen", "rewards/chosen"),
                         ("rewards_rejected", "rewards/rejected")):
        assert [log[s][ours] for s in log] == pytest.approx([t[theirs] for t in steps], rel=1e-4, abs=1e-7), ours
    assert log[1]["loss"] == pytest.approx(np.log(2)) and log[6]["loss"] < 0.5
    export = json.loads((run_dir / "hf" / "occi_export.json").read_text())
    assert export["dpo"] and export["iteration"] == 6
    assert (run_dir / "hf" / "chat_template.jinja").read_text() == \
        (run_dir / "dpo" / "tokenizer" / "chat_template.jinja").read_text()


def test_dpo_at_tp2_and_at_pp2_with_the_live_reference_equals_tp1(dpo_run, tmp_path):
    """The fixture's first three steps again at TP=2 (the reference recomputed there) and at PP=2
    (two micro batches of two pairs through the pipeline schedule, the reference live: the starting
    weights swapped in before every step): the same losses, rewards and gradient norms."""
    config, run_dir = dpo_run
    reference = dpo_log(run_dir)
    stored = np.load(run_dir / "dpo" / "reference_logps.npz")["logps"]
    layouts = {"tp2": ({"tensor_parallel": 2}, {}), "pp2": ({"pipeline_parallel": 2}, {"reference": "live"})}
    for name, (parallel, dpo) in layouts.items():
        folder = tmp_path / name
        folder.mkdir()
        copy = copy_run(run_dir, config, folder)
        cfg = write_config(folder, parallel=parallel, stop_after_steps=3, **dpo)
        result = occi("dpo", str(cfg), "--run-dir", str(copy), "--reconfigure", timeout=900)
        assert result.returncode == 0 and "stopped early" in result.stdout, result.stdout[-2000:] + result.stderr[-3000:]
        log = dpo_log(copy)
        assert sorted(log) == [1, 2, 3], name
        for key in ("loss", "grad_norm", "rewards_chosen", "rewards_rejected", "answer_tokens"):
            assert [log[s][key] for s in log] == pytest.approx([reference[s][key] for s in log], rel=1e-4,
                                                               abs=1e-7), (name, key)
        if name == "tp2":
            recomputed = np.load(copy / "dpo" / "reference_logps.npz")["logps"]
            assert recomputed == pytest.approx(stored, rel=1e-5)
        else:
            assert not (copy / "dpo" / "reference_logps.npz").exists()


def test_simpo_needs_no_reference_and_its_first_step_is_the_formula(dpo_run, tmp_path):
    """SimPO for one step: no reference pass; the loss and rewards are those of its formula over
    the first step's pairs, with the answers' mean log-probabilities from transformers."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from occi import config as config_module
    from occi.dpo import batches
    from occi.dpo.data import Pairs

    config, run_dir = dpo_run
    copy = copy_run(run_dir, config, tmp_path)
    beta, gamma = 2.0, 0.5
    cfg_file = write_config(tmp_path, loss="simpo", beta=beta, simpo_gamma=gamma, stop_after_steps=1)
    result = occi("dpo", str(cfg_file), "--run-dir", str(copy), "--reconfigure", timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert not (copy / "dpo" / "reference_logps.npz").exists()
    record = dpo_log(copy)[1]
    cfg = config_module.load(str(copy / "config.yaml"))
    pairs = Pairs.load(copy / "dpo" / "data" / "pairs.npz")
    first = batches.plan(pairs, cfg.dpo.epochs, cfg.dpo.global_batch_size, cfg.seed)[0]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "base", dtype=torch.float32, attn_implementation="eager")

    def mean_logp(sequence: int) -> torch.Tensor:
        ids = torch.from_numpy(pairs.sequence(sequence).astype(np.int64))[None]
        with torch.no_grad():
            logps = torch.log_softmax(model(ids).logits[0, :-1].double(), -1).gather(1, ids[0, 1:, None])[:, 0]
        return logps[int(pairs.answer_start[sequence]) - 1:].mean()

    chosen = torch.stack([beta * mean_logp(2 * p) for p in first])
    rejected = torch.stack([beta * mean_logp(2 * p + 1) for p in first])
    assert record["loss"] == pytest.approx(float((-F.logsigmoid(chosen - rejected - gamma)).mean()), rel=1e-4)
    assert record["rewards_chosen"] == pytest.approx(float(chosen.mean()), rel=1e-4)
    assert record["rewards_rejected"] == pytest.approx(float(rejected.mean()), rel=1e-4)


def test_dpo_needs_its_section_a_checkpoint_and_sane_values(tmp_path):
    write_inputs(tmp_path)
    make_base(tmp_path / "base", "qwen2")
    bad = write_config(tmp_path, "bad.yaml", beta=0)
    result = occi("dpo", str(bad), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "dpo" in result.stderr and "beta" in result.stderr and "above 0" in result.stderr
    result = occi("dpo", str(write_config(tmp_path)), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "no checkpoint to tune" in result.stderr and "occi sft" in result.stderr
    config = yaml.safe_load((tmp_path / "run.yaml").read_text())
    del config["dpo"]
    (tmp_path / "none.yaml").write_text(yaml.safe_dump(config))
    result = occi("dpo", str(tmp_path / "none.yaml"), "--run-dir", str(tmp_path / "other"))
    assert result.returncode == 2 and "no `dpo:` section" in result.stderr, result.stderr


def test_the_card_has_the_preference_tuning_section(dpo_run, tmp_path):
    config, run_dir = dpo_run
    result = occi("card", str(config), "--run-dir", str(run_dir), "--out", str(tmp_path / "MODEL_CARD.md"))
    assert result.returncode == 0, result.stderr[-3000:]
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "## Preference tuning" in card and "## Supervised fine-tuning" not in card
    assert "| Loss | DPO (sigmoid), beta 0.1, reference: the starting model" in card
    assert re.search(r"\| en \| \d+ \| 4 \| \d+ \| \d+ \| .*duplicate/exact 1", card), card  # rows read, pairs kept
    assert "| broken | jsonl | 1 | 0 |" in card and "\n- dpo\n" in card
    assert (tmp_path / "dpo_curves.png").stat().st_size > 1000
    # the training-content summary written beside the card lists the pairs' sources, every number from the run's records
    summary = json.loads((tmp_path / "training-content-summary.json").read_text())["sections"]
    stats = json.loads((run_dir / "dpo" / "data" / "stats.json").read_text())
    listed = [row for section in summary.values() for row in section.get("sources", [])
              if row["used_for"] == "preference tuning"]
    assert {row["name"]: (row["rows_in"], row["pairs"], row["dropped"], row["tokens"], row["tokens_planned"])
            for row in listed} == {name: (e["rows_in"], e["kept"], e["drops"], e["tokens"], e["tokens_per_epoch"] * stats["epochs"])
                                   for name, e in stats["sources"].items()}
    log = [json.loads(line) for line in (run_dir / "dpo" / "log.jsonl").read_text().splitlines() if line.strip()]
    steps = {record["step"]: record["tokens"] for record in log if record.get("kind") == "train"}
    assert summary["1.3"]["tuning_trained"] == {"dpo": {"tokens": sum(steps.values()), "steps": len(steps)}} and steps
    assert summary["1.3"]["training_data_size"]["text"]["dpo_tokens"] == stats["totals"]["tokens"]
    assert summary["3.3"]["dpo_checks"] == {"pairs_kept": stats["totals"]["kept"], "dropped": stats["totals"]["drops"]}


def test_merge_of_the_runs_checkpoints_and_stage_models_with_its_card_section(dpo_run, tmp_path):
    """`occi merge` on a copy of the fixture's run: the average of its last two DPO checkpoints
    (steps 2 and 6, each exported; the newest equal to `occi export`'s hf/), then task arithmetic
    of the DPO model on the imported base (the stage models named `dpo` and `base`), checked
    tensor by tensor, and the card's merged-model section and lineage naming the parents."""
    import torch
    from safetensors.torch import load_file

    config, run_dir = dpo_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)

    def tensors(folder: Path) -> dict:
        found = {}
        for path in sorted(folder.glob("*.safetensors")):
            found.update(load_file(str(path)))
        return found

    def merge(name: str, section: dict) -> dict:
        settings = yaml.safe_load(config.read_text())
        settings["merge"] = section
        (config.parent / name).write_text(yaml.safe_dump(settings, allow_unicode=True))
        result = occi("merge", str(config.parent / name), "--run-dir", str(copy), "--reconfigure", timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        return tensors(copy / "merged")

    merged = merge("average.yaml", {"checkpoints": {"of": "dpo", "last": 2}})
    step2, step6 = (tensors(copy / "stage_models" / f"dpo-iter_{step:07d}") for step in (2, 6))
    exported = tensors(run_dir / "hf")
    assert set(merged) == set(exported) and not torch.equal(step2["model.norm.weight"], step6["model.norm.weight"])
    for name, tensor in merged.items():
        assert torch.equal(step6[name], exported[name]), name
        assert torch.equal(tensor, (0.5 * step2[name].double() + 0.5 * step6[name].double()).float()), name
    lineage = json.loads((copy / "merged" / "occi_merge.json").read_text())
    assert [(p["stage"], p["iteration"], p["share"]) for p in lineage["parents"]] == [("dpo", 2, 0.5), ("dpo", 6, 0.5)]

    merged = merge("arithmetic.yaml", {"models": ["dpo"], "base": "base", "method": "task_arithmetic", "weights": [0.5]})
    base = tensors(copy / "stage_models" / "base")
    assert json.loads((copy / "stage_models" / "base" / "occi_export.json").read_text())["iteration"] == 0
    for name, tensor in merged.items():
        expected = base[name].double() + 0.5 * (exported[name].double() - base[name].double())
        assert torch.equal(tensor, expected.float()), name
    result = occi("card", str(config.parent / "arithmetic.yaml"), "--run-dir", str(copy), "--out",
                  str(tmp_path / "MODEL_CARD.md"))
    assert result.returncode == 0, result.stderr[-3000:]
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "## Merged model" in card and "task arithmetic (base + the sum" in card
    assert "| parent 1 | this run's dpo stage, checkpoint iteration 6 | 0.5 |" in card
    assert "| base | this run's train stage, checkpoint iteration 0 |" in card
    assert "Merged model (`merged/`): task_arithmetic of this run's dpo stage, checkpoint iteration 6 x 0.5" in card
