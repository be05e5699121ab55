"""`occi eval` on any transformers model: a tiny random Llama built here, real lm-eval runs.

The model's tokenizer adds a BOS token, as Llama, Mistral and EuroLLM tokenizers do, so the
bits-per-byte check below fails if rolling perplexity scores the BOS token.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from conftest import DEMO_SAMPLES, REPO, occi

LANGS = ["de", "fr", "el"]


def build_tiny_llama(folder: Path, codes: list[str]) -> Path:
    """A random 2-layer LlamaForCausalLM and a SentencePiece tokenizer trained on the demo text."""
    import sentencepiece as spm
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    folder.mkdir(parents=True)
    text = folder / "train.txt"
    text.write_text("\n".join(json.loads(line)["text"] for code in codes
                              for line in (DEMO_SAMPLES / f"{code}.jsonl").read_text(encoding="utf-8").splitlines()),
                    encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(folder / "tokenizer"), vocab_size=400,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1,
                                   eos_id=2, pad_id=-1, minloglevel=2)
    text.unlink()
    tokenizer = LlamaTokenizer.from_pretrained(str(folder), add_bos_token=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                         max_position_embeddings=4096, bos_token_id=1, eos_token_id=2))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_run_config(folder: Path, languages: list[str], **eval_settings) -> Path:
    path = folder / f"eval-{'-'.join(languages)}.yaml"
    path.write_text(yaml.safe_dump({"name": "evaltest", "languages": languages, "corpora": "demo",
                                    "eval": {"batch_size": 4, **eval_settings}}))
    return path


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """The offline suite of three languages through `occi eval --model`, on a run with corpora only."""
    folder = tmp_path_factory.mktemp("eval")
    model = build_tiny_llama(folder / "tiny-llama", LANGS)
    config = write_run_config(folder, LANGS)
    run_dir = folder / "run"
    built = occi("corpora", "build", str(config), "--run-dir", str(run_dir))
    assert built.returncode == 0, built.stderr[-2000:]
    result = occi("eval", str(config), "--run-dir", str(run_dir), "--model", str(model))
    assert result.returncode == 0, result.stderr[-3000:]
    return config, run_dir, model, result


def test_offline_suite_gives_a_per_language_table_in_lm_evals_layout(evaluated):
    _, run_dir, model, result = evaluated
    table = json.loads((run_dir / "eval" / "table-tiny-llama.json").read_text())
    cells = {(c["language"], c["family"]): c for c in table["cells"]}
    assert set(cells) == {(code, family) for code in LANGS for family in ("bpb", "mc")}
    assert {c["state"] for c in cells.values()} == {"done"}
    for code in LANGS:
        assert 2 < cells[(code, "bpb")]["value"] < 20  # a random model: about log2(vocab) bits per token
        assert 0 <= cells[(code, "mc")]["value"] <= 1 and cells[(code, "mc")]["stderr"] > 0
        assert f"| {code} | {cells[(code, 'bpb')]['value']:.3f} | " in result.stdout
    for code in LANGS:
        for family, task in (("bpb", f"occi_bpb_{code}"), ("mc", f"occi_mc_{code}")):
            folder = run_dir / "eval" / "offline" / "tiny-llama" / code / family
            results = list(folder.glob("tiny-llama/results_*.json"))
            assert len(results) == 1, folder
            saved = json.loads(results[0].read_text())
            assert saved["results"][task][f"{cells[(code, family)]['metric']},none"] == cells[(code, family)]["value"]
            assert list(folder.glob(f"tiny-llama/samples_{task}_*.jsonl"))
    mc_samples = next((run_dir / "eval" / "offline" / "tiny-llama" / "de" / "mc").glob("*/samples_*.jsonl"))
    assert len(mc_samples.read_text().splitlines()) == 12  # every question of eval/data/mc/de.jsonl
    assert not (run_dir / "eval" / "_DONE").exists()  # another model's results do not complete the stage


def test_bits_per_byte_counts_the_text_and_not_the_bos_token(evaluated):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, run_dir, model_dir, _ = evaluated
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    assert tokenizer("Hallo").input_ids[0] == tokenizer.bos_token_id  # the pitfall is present
    table = json.loads((run_dir / "eval" / "table-tiny-llama.json").read_text())
    for code in LANGS:
        texts = [json.loads(line)["text"] for line in
                 (run_dir / "eval" / "tasks" / "occi_bpb" / f"heldout_{code}.jsonl").read_text().splitlines()]
        nll, size = 0.0, 0
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False).input_ids
            with torch.no_grad():
                logits = model(torch.tensor([[tokenizer.bos_token_id, *ids]])).logits[0, :-1]
            nll -= torch.log_softmax(logits.double(), -1)[torch.arange(len(ids)), torch.tensor(ids)].sum().item()
            size += len(text.encode("utf-8"))
        expected = nll / size / math.log(2)
        value = next(c["value"] for c in table["cells"] if c["language"] == code and c["family"] == "bpb")
        assert value == pytest.approx(expected, rel=1e-4), code


def test_completed_cells_are_skipped_and_a_removed_one_runs_again(evaluated):
    config, run_dir, model, _ = evaluated
    offline = run_dir / "eval" / "offline" / "tiny-llama"
    stamps = {path: path.stat().st_mtime_ns for path in offline.rglob("results_*.json")}
    (offline / "fr" / "mc" / "_DONE").unlink()
    result = occi("eval", str(config), "--run-dir", str(run_dir), "--model", str(model))
    assert result.returncode == 0, result.stderr[-2000:]
    changed = [path for path in offline.rglob("results_*.json") if stamps.get(path) != path.stat().st_mtime_ns]
    assert len(changed) == 1 and changed[0].is_relative_to(offline / "fr" / "mc"), changed
    assert (offline / "fr" / "mc" / "_DONE").exists()
    assert "| 1/1 [" in result.stderr and "/6 [" not in result.stderr  # one cell ran, five were skipped


def test_unreachable_benchmarks_fail_per_cell_and_gaps_are_reported(evaluated, tmp_path):
    """A baseline evaluated in a run directory of its own: no corpus or trained model needed."""
    _, _, model, _ = evaluated
    config = write_run_config(tmp_path, ["el", "ga"], limit=2)
    run_dir = tmp_path / "baseline"
    result = occi("eval", str(config), "--run-dir", str(run_dir), "--model", str(model), "--suite", "eu-leaderboard",
                  env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    table = json.loads((run_dir / "eval" / "table-tiny-llama.json").read_text())
    leaderboard = [c for c in table["cells"] if c["suite"] == "eu-leaderboard"]
    from occi import languages

    assert {c["task"] for c in leaderboard} == {*languages.lm_eval_tasks("el").values(), "multiblimp_gle", "sib200_ga"}
    assert {"global_mmlu_full_el", "belebele_ell_Grek", "xnli_el", "arc_challenge_mt_el", "arc_eu20_el"} <= {
        c["task"] for c in leaderboard}
    assert {c["state"] for c in leaderboard} == {"failed"} and all(c["error"] for c in leaderboard)
    for cell in leaderboard:
        assert (run_dir / "eval" / "eu-leaderboard" / "tiny-llama" / "el" / cell["family"] / "error.json").exists()
    assert table["gaps"]["ga"] == [f for f in languages.BENCHMARKS if f not in ("multiblimp", "sib200")]
    assert "hellaswag" in table["gaps"]["el"] and "belebele" not in table["gaps"]["el"]
    assert "| ga | n/a | n/a | n/a | n/a |" in result.stdout
    assert f"{len(leaderboard)} cell(s) failed" in result.stdout and "Lacking: el hellaswag, truthfulqa" in result.stdout


def test_the_leaderboard_reads_occi_eval_results_beside_other_models(evaluated):
    from occi.report import leaderboard

    _, run_dir, _, _ = evaluated
    board = leaderboard.read([f"tiny={run_dir / 'eval' / 'offline'}", str(REPO / "tests" / "data" / "leaderboard" / "model-a")])
    summary = leaderboard.summarize(board)
    tiny = next(m for m in summary["models"] if m["model"] == "tiny")
    table = json.loads((run_dir / "eval" / "table-tiny-llama.json").read_text())
    for code in LANGS:
        mc = next(c["value"] for c in table["cells"] if c["language"] == code and c["family"] == "mc")
        assert tiny["languages"][code] == pytest.approx(mc)  # bits per byte is shown, not averaged
    assert {(c["language"], c["benchmark"]) for c in summary["cells"] if c["model"] == "tiny"} == \
        {(code, family) for code in LANGS for family in ("bpb", "mc")}
    assert not board.problems


def test_without_a_model_or_with_bad_settings_the_error_is_one_line(tmp_path):
    config = write_run_config(tmp_path, ["de"])
    missing = occi("eval", str(config), "--run-dir", str(tmp_path / "empty"))
    assert missing.returncode == 2 and "no exported model" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    for settings, message in ((dict(suites=["online"]), "unknown suite 'online'"),
                              (dict(num_fewshot={"arcc": 0}), "unknown benchmark family 'arcc'"),
                              (dict(limit=0), "limit: expected at least 1"),
                              (dict(dtype="fp8"), "dtype: expected")):
        bad = occi("eval", str(write_run_config(tmp_path, ["de"], **settings)), "--run-dir", str(tmp_path / "empty"))
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
