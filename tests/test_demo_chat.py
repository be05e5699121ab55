"""`occi run` of the demo-chat recipe, made smaller (three languages, a few steps): corpus ->
pretraining -> SFT -> DPO -> TIES merge -> eval of base, sft, dpo and merged -> card, each stage's
output there, the card naming every stage and the merged model's parents, the leaderboard's
side-by-side table holding the four models' results; and the bundled preference pairs regenerate
without a diff."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from conftest import REPO, occi

pytestmark = pytest.mark.timeout(1800)

LANGS = ["en", "de", "fr"]
EVAL_LANGS = ["en", "de"]
MODELS = ["base", "sft", "dpo", "merged"]


def smaller_demo_chat(folder: Path) -> Path:
    config = yaml.safe_load((REPO / "configs" / "demo-chat.yaml").read_text(encoding="utf-8"))
    config["languages"] = LANGS
    config["train"].update(steps=4, save_interval=4, eval_interval=4, log_interval=2, warmup_steps=1)
    config["sft"]["sources"][0]["path"] = str(REPO / "corpora" / "chat-demo" / "*.jsonl")
    config["dpo"]["sources"][0]["path"] = str(REPO / "corpora" / "pref-demo" / "*.jsonl")
    # four models are evaluated: two languages, few documents and prompts keep that short
    config["eval"].update(heldout_max_docs=5, fidelity_max_new_tokens=8, fidelity_max_prompts=3, limit=5,
                          languages=EVAL_LANGS)
    path = folder / "demo-chat.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.slow
def test_occi_run_demo_chat_goes_from_corpus_to_card_with_four_models_side_by_side(tmp_path):
    run_dir = tmp_path / "run"
    result = occi("run", str(smaller_demo_chat(tmp_path)), "--run-dir", str(run_dir), timeout=1700)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "all stages done" in result.stdout
    for output in ("corpora/stats.json", "tokenizer/tokenizer.model", "data/blend.json", "checkpoints/latest",
                   "sft/checkpoints/latest", "dpo/checkpoints/latest", "hf/model.safetensors",
                   "stage_models/base/_DONE", "stage_models/sft/_DONE", "stage_models/dpo/_DONE",
                   "merged/occi_merge.json", "eval/_DONE", "report/MODEL_CARD.md", "report/leaderboard.html"):
        assert (run_dir / output).exists(), output
    lineage = json.loads((run_dir / "merged" / "occi_merge.json").read_text())
    assert lineage["method"] == "ties" and [p["stage"] for p in lineage["parents"]] == ["sft", "dpo"]
    assert lineage["base"]["stage"] == "train"
    card = (run_dir / "report" / "MODEL_CARD.md").read_text()
    made_by = next(line for line in card.splitlines() if line.startswith("| occi |"))
    for stage in ("corpora", "tokenizer", "data", "train", "sft", "dpo", "export", "merge", "eval"):
        assert f"{stage}," in made_by or f"{stage})" in made_by, (stage, made_by)
    for heading in ("## Supervised fine-tuning", "## Preference tuning", "## Merged model"):
        assert heading in card, heading
    assert "Merged model (`merged/`): ties of this run's sft stage" in card
    evaluation = card.split("## Evaluation")[1].split("\n## ")[0]  # hf is the dpo model: its table, evaluated as dpo
    assert "_Not available" not in evaluation and "| en |" in evaluation, evaluation[:500]
    side = json.loads((run_dir / "report" / "leaderboard.json").read_text())["side_by_side"]
    assert side["models"] == MODELS
    models = json.loads((run_dir / "eval" / "models.json").read_text())
    assert set(MODELS) <= set(models)
    for model in MODELS:  # every value in the model's column is its own results file's headline value
        table = json.loads((run_dir / "eval" / f"table-{model}.json").read_text())
        for cell in table["cells"]:
            row = next((r for r in side["rows"] if (r["language"], r["benchmark"]) == (cell["language"], cell["family"])),
                       None)
            if cell.get("value") is not None and row is not None:
                assert row["values"][model] == pytest.approx(cell["value"], rel=1e-9), (model, cell)
    assert {r["language"] for r in side["rows"]} == set(EVAL_LANGS)
    assert all(r["values"][m] is not None for r in side["rows"] if r["benchmark"] == "bpb" for m in MODELS)


def test_the_bundled_preference_pairs_are_what_their_script_writes():
    spec = importlib.util.spec_from_file_location("make_pref_demo", REPO / "scripts" / "make_pref_demo.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for code, rows in script.pairs().items():
        written = [json.loads(line) for line in (REPO / "corpora" / "pref-demo" / f"{code}.jsonl").read_text(
            encoding="utf-8").splitlines()]
        assert written == rows, code
        assert all(row["chosen"] != row["rejected"] and row["rejected_language"] != code for row in rows)
    assert len(list((REPO / "corpora" / "pref-demo").glob("*.jsonl"))) == 28
